// Cold-start figures of the Lambda function: the zipped artifact `serverless package` builds
// for a stage (offline, no credentials), and the module init time of that bundle in fresh
// Node 24 processes (the work Lambda bills as Init: evaluate the bundle, load config, build
// the S3 client). Prints a table and writes bench/results/cold-start.json.
//
//   npm run bench:cold-start [-- --stage=prod --runs=15]
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { buildFunction } from '../scripts/build.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, def) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def;
const stage = arg('stage', 'prod');
const runs = Number(arg('runs', '15'));

// 1. The deployment artifact.
const out = await mkdtemp(path.join(tmpdir(), 'sls-pkg-'));
const t0 = performance.now();
await promisify(execFile)(
  process.execPath,
  [path.join(ROOT, 'node_modules/.bin/serverless'), 'package', '--stage', stage, '--package', out],
  {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', CI: '1' },
    maxBuffer: 16 * 1024 * 1024,
  },
);
const packageSeconds = (performance.now() - t0) / 1000;
const zips = (await readdir(out)).filter((f) => f.endsWith('.zip'));
const zipBytes = Object.fromEntries(await Promise.all(zips.map(async (z) => [z, (await stat(path.join(out, z))).size])));
await rm(out, { recursive: true, force: true });

// 2. Module init time of the same bundle (serverless-esbuild's options, see scripts/build.mjs).
const bundle = await buildFunction(path.join(await mkdtemp(path.join(tmpdir(), 'fn-')), 'upload.mjs'));
const bundleBytes = (await stat(bundle)).size;
const probe = `
  const { installRuntimeGlobals } = await import(${JSON.stringify(pathToFileURL(path.join(ROOT, 'scripts/lambda-runtime.mjs')).href)});
  installRuntimeGlobals();
  const t = performance.now();
  await import(${JSON.stringify(pathToFileURL(bundle).href)});
  const init = performance.now() - t;
  console.log(JSON.stringify({ initMs: init, sinceProcessStartMs: performance.now() }));`;
const samples = [];
for (let i = 0; i < runs; i++) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
    env: { PATH: process.env.PATH, UPLOAD_BUCKET: 'bench-bucket', AWS_REGION: 'us-east-1', LOG_LEVEL: 'info' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(r.stderr);
  samples.push(JSON.parse(r.stdout.trim().split('\n').at(-1)));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const result = {
  date: new Date().toISOString(),
  node: process.version,
  machine: `${(await import('node:os')).cpus()[0]?.model ?? 'unknown'} x${(await import('node:os')).cpus().length}`,
  stage,
  packageSeconds: +packageSeconds.toFixed(1),
  zipBytes,
  bundleBytes,
  runs,
  initMsMedian: +median(samples.map((s) => s.initMs)).toFixed(1),
  initMsMin: +Math.min(...samples.map((s) => s.initMs)).toFixed(1),
  initMsMax: +Math.max(...samples.map((s) => s.initMs)).toFixed(1),
  processStartToReadyMsMedian: +median(samples.map((s) => s.sinceProcessStartMs)).toFixed(1),
};
await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
await writeFile(path.join(ROOT, 'bench/results/cold-start.json'), JSON.stringify(result, null, 2) + '\n');
console.log(`| figure | value |\n|---|---|`);
for (const [k, v] of Object.entries(result)) console.log(`| ${k} | ${typeof v === 'object' ? JSON.stringify(v) : v} |`);
