// Bundles every server the benchmarks start, with the options of scripts/build.mjs
// (buildServer), into bench/results/tmp/ (git-ignored): the bench measures bundles, never
// TypeScript sources, because Node's type stripping alone adds ~38 MiB of RSS to a process.
// Its own output folder, so a bench run never races `npm run build` or the memory test over
// dist/server.mjs.
//
// `src` is the working tree by default. With a git revision (`--src=HEAD`), src/ is taken
// from that commit (git archive) so a run measures committed code while others edit the
// working tree; files of the working tree's src/ that the commit lacks (a module not yet
// committed) are copied in.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { SERVER_BUILD_OPTIONS, oneByteSource } from '../scripts/build.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BUNDLE_DIR = path.join(ROOT, 'bench/results/tmp');

/** Server entry points by bundle name (bench/variants.mjs says which variant runs which). */
export const ENTRIES = {
  raw: 'bench/baselines/raw-discard.mjs',
  proxy: 'bench/baselines/proxy-put.mjs',
  busboy: 'bench/baselines/busboy-parse.mjs',
  naive: 'bench/baselines/naive-lib-storage.mjs',
  buffered: 'bench/baselines/buffered.mjs',
  // The service as `npm start` runs it (dist/server.mjs is the same entry, same options).
  service: 'src/server.ts',
  // The same, but Node's built-ins imported as ES modules, as before the builtins-via-require
  // plugin (scripts/esbuild-plugins.mjs): what that plugin saves.
  'service-esm-builtins': 'src/server.ts',
  // The same, but with the CommonJS builds of dependencies (esbuild's default for node), as
  // before SERVER_BUILD_OPTIONS took their ES builds.
  'service-cjs-deps': 'src/server.ts',
};
/** esbuild options that differ from SERVER_BUILD_OPTIONS, by bundle. */
const OVERRIDES = {
  'service-esm-builtins': { plugins: [] },
  'service-cjs-deps': { mainFields: ['main', 'module'] },
};

async function filesUnder(dir, base = dir) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p, base)));
    else out.push(path.relative(base, p));
  }
  return out;
}

/** Extracts src/ of a git revision under BUNDLE_DIR; returns { dir, commit }. */
export async function snapshotSrc(rev) {
  const commit = execFileSync('git', ['rev-parse', rev], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = path.join(BUNDLE_DIR, `src-${commit.slice(0, 12)}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${commit} src | tar -x -C "${dir}"`], { cwd: ROOT });
  const srcDir = path.join(dir, 'src');
  for (const rel of await filesUnder(path.join(ROOT, 'src'))) {
    if (!existsSync(path.join(srcDir, rel))) await cp(path.join(ROOT, 'src', rel), path.join(srcDir, rel));
  }
  return { dir: srcDir, commit };
}

/** esbuild plugin: every import that lands in <root>/src/ is taken from `srcDir` instead. */
function redirectSrc(srcDir) {
  const from = path.join(ROOT, 'src') + path.sep;
  return {
    name: 'redirect-src',
    setup(b) {
      b.onResolve({ filter: /^\.{1,2}\// }, (args) => {
        const p = path.resolve(args.resolveDir, args.path);
        if (!p.startsWith(from)) return undefined;
        return { path: path.join(srcDir, p.slice(from.length)) };
      });
    },
  };
}

/**
 * Builds the given bundles (names of ENTRIES); returns { bundles: { variant: path }, src }.
 * `srcRev`: a git revision to take src/ from, or undefined for the working tree.
 */
export async function buildBundles(variants = Object.keys(ENTRIES), srcRev) {
  const unknown = variants.filter((v) => !ENTRIES[v]);
  if (unknown.length) throw new Error(`no bundle named ${unknown.join(', ')} (known: ${Object.keys(ENTRIES).join(', ')})`);
  await mkdir(BUNDLE_DIR, { recursive: true });
  let src = { dir: path.join(ROOT, 'src'), commit: 'working tree' };
  if (srcRev) src = await snapshotSrc(srcRev);
  const bundles = {};
  await Promise.all(
    variants.map(async (v) => {
      const outfile = path.join(BUNDLE_DIR, `${v}-server.mjs`);
      let entry = path.join(ROOT, ENTRIES[v]);
      if (srcRev && ENTRIES[v].startsWith('src/')) entry = path.join(src.dir, ENTRIES[v].slice(4));
      await build({
        ...SERVER_BUILD_OPTIONS,
        entryPoints: [entry],
        outfile,
        ...OVERRIDES[v],
        plugins: [...(OVERRIDES[v]?.plugins ?? SERVER_BUILD_OPTIONS.plugins), ...(srcRev ? [redirectSrc(src.dir)] : [])],
        // The snapshot lives under bench/results/tmp/: packages still resolve from <root>/node_modules.
        nodePaths: [path.join(ROOT, 'node_modules')],
      });
      await oneByteSource(outfile);
      bundles[v] = outfile;
    }),
  );
  return { bundles, src: { commit: src.commit, dir: path.relative(ROOT, src.dir) } };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const rev = args.find((a) => a.startsWith('--src='))?.slice(6);
  const names = args.filter((a) => !a.startsWith('--'));
  const { bundles, src } = await buildBundles(names.length ? names : undefined, rev);
  console.log(`src: ${src.commit} (${src.dir})`);
  for (const [v, f] of Object.entries(bundles)) console.log(`${v}: ${path.relative(ROOT, f)}`);
}
