// Module init of the Lambda bundle, this checkout against another commit, in alternating
// fresh Node 24 processes (so that the load of a shared machine hits both alike). The other
// commit is extracted with `git archive` into a temp directory and bundled with its own
// scripts/build.mjs and this checkout's node_modules.
//
//   node bench/cold-start-ab.mjs [--base=main] [--pairs=21]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, def) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const base = arg('base', 'main');
const pairs = Number(arg('pairs', '21'));

const work = await mkdtemp(path.join(tmpdir(), 'cold-ab-'));
const baseDir = path.join(work, 'base');
execFileSync('sh', ['-c', `mkdir -p "${baseDir}" && git -C "${ROOT}" archive "${base}" | tar -x -C "${baseDir}"`]);
await symlink(path.join(ROOT, 'node_modules'), path.join(baseDir, 'node_modules'), 'dir');
const bundles = {};
for (const [name, root] of [
  [base, baseDir],
  ['HEAD+worktree', ROOT],
]) {
  const { buildFunction } = await import(pathToFileURL(path.join(root, 'scripts/build.mjs')).href);
  bundles[name] = await buildFunction(path.join(work, `${name.replace(/\W/g, '_')}.mjs`));
}
const probe = (bundle) => `
  const { installRuntimeGlobals } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'scripts/lambda-runtime.mjs')).href)});
  installRuntimeGlobals();
  const t = performance.now();
  await import(${JSON.stringify(pathToFileURL(bundle).href)});
  console.log(performance.now() - t);`;
const samples = Object.fromEntries(Object.keys(bundles).map((k) => [k, []]));
for (let i = 0; i < pairs; i++) {
  for (const [name, bundle] of Object.entries(bundles)) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe(bundle)], {
      env: { PATH: process.env.PATH, UPLOAD_BUCKET: 'bench-bucket', AWS_REGION: 'us-east-1', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(r.stderr);
    samples[name].push(Number(r.stdout.trim().split('\n').at(-1)));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const { loadavg } = await import('node:os');
console.log(`node ${process.version}, ${pairs} pairs, load average ${loadavg()[0].toFixed(1)}`);
console.log('| bundle | bytes | init median ms | min | max |\n|---|---|---|---|---|');
for (const [name, xs] of Object.entries(samples)) {
  const bytes = (await stat(bundles[name])).size;
  console.log(
    `| ${name} | ${bytes} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`,
  );
}
await rm(work, { recursive: true, force: true });
