// Bundles the Node server into dist/server.mjs (what `npm start` and a container run).
// Running the bundle instead of the TypeScript sources saves ~38 MiB of RSS: Node's type
// stripping loads a WebAssembly compiler into every process (measured: 114 vs 75 MiB idle).
import { build } from 'esbuild';
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { builtinsViaRequire } from './esbuild-plugins.mjs';

export const SERVER_BUNDLE = fileURLToPath(new URL('../dist/server.mjs', import.meta.url));

/** esbuild options of the server bundle (also used by bench/build.mjs for its variants). */
export const SERVER_BUILD_OPTIONS = {
  bundle: true,
  platform: 'node',
  target: 'node24',
  format: 'esm',
  sourcemap: true,
  // Dev-only, loaded lazily for the embedded S3; never part of a production bundle.
  external: ['s3rver'],
  // The ES builds of dependencies (the AWS SDK's dist-es), as the Lambda bundle takes them:
  // esbuild drops what the service never calls (every other S3 operation and its schema),
  // where a CommonJS build is one module evaluated whole at start.
  mainFields: ['module', 'main'],
  // The AWS SDK still has CommonJS inside; give the ESM bundle a require().
  banner: { js: "import{createRequire}from'node:module';const require=createRequire(import.meta.url);" },
  plugins: [builtinsViaRequire],
  logLevel: 'warning',
};

/**
 * Rewrites `outfile` so that its source can be held as a one-byte string. A process keeps each
 * module's source for as long as it runs (Node holds a large one outside V8's heap), and one
 * character beyond Latin-1 makes the whole text UTF-16, twice the bytes. esbuild escapes every
 * such character in code (`charset` is ASCII by default) but copies comments as they are, and
 * one dependency's doc comment draws boxes. Each UTF-16 unit becomes one `?`, so every line
 * and column of the source map still holds.
 */
export async function oneByteSource(outfile) {
  const text = await readFile(outfile, 'utf8');
  if (!/[\u0100-\uffff]/.test(text)) return;
  await writeFile(outfile, text.replace(/[\u0100-\uffff]/g, '?'));
}

export async function buildServer(outfile = SERVER_BUNDLE) {
  await build({
    ...SERVER_BUILD_OPTIONS,
    entryPoints: [fileURLToPath(new URL('../src/server.ts', import.meta.url))],
    outfile,
  });
  await oneByteSource(outfile);
  return outfile;
}

export const FUNCTION_BUNDLE = fileURLToPath(new URL('../dist/upload-function.mjs', import.meta.url));

/**
 * Bundles functions/upload.ts the way serverless-esbuild does for the deployed zip (keep in
 * step with `custom.esbuild` in serverless.yml): minified ESM for node24, AWS SDK included.
 * Tests and `npm run invoke:local` run this bundle.
 */
export async function buildFunction(outfile = FUNCTION_BUNDLE) {
  await build({
    entryPoints: [fileURLToPath(new URL('../functions/upload.ts', import.meta.url))],
    outfile,
    bundle: true,
    minify: true,
    keepNames: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    mainFields: ['module', 'main'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    plugins: [builtinsViaRequire],
    logLevel: 'warning',
  });
  return outfile;
}

export const CLI_BUNDLE = fileURLToPath(new URL('../dist/cli.mjs', import.meta.url));

/**
 * Bundles the client CLI (src/client/cli.ts) into dist/cli.mjs, which bin/s3-stream-upload.mjs
 * loads. Node refuses to strip types under node_modules, so an installed package needs JS;
 * the client has no dependencies, so the bundle is small and runs on Node 20+.
 */
export async function buildCli(outfile = CLI_BUNDLE) {
  await build({
    entryPoints: [fileURLToPath(new URL('../src/client/cli.ts', import.meta.url))],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
  });
  return outfile;
}

export const CLIENT_PACKAGE = fileURLToPath(new URL('../packages/client/', import.meta.url));

/**
 * Builds the installable client package in packages/client/dist: the library (index.js) and
 * the CLI (cli.js) as ESM for Node 20, sharing one chunk, with the SigV4 signer and the AWS
 * credential chain bundled in (so the package installs with no dependencies, and a calling
 * service does not pull the service's own S3 SDK), plus .d.ts files from tsc.
 */
export async function buildClientPackage(dest = CLIENT_PACKAGE) {
  // Tests build into a directory of their own: test files run in parallel, and one must not
  // pack while another wipes the shared dist/.
  if (dest !== CLIENT_PACKAGE)
    await cp(CLIENT_PACKAGE, dest, { recursive: true, filter: (src) => !src.startsWith(join(CLIENT_PACKAGE, 'dist')) });
  const dist = join(dest, 'dist');
  await rm(dist, { recursive: true, force: true });
  await build({
    entryPoints: {
      index: fileURLToPath(new URL('../src/client/index.ts', import.meta.url)),
      cli: fileURLToPath(new URL('../src/client/cli.ts', import.meta.url)),
    },
    outdir: dist,
    outExtension: { '.js': '.js' },
    bundle: true,
    splitting: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    mainFields: ['module', 'main'],
    // Some of the SDK's credential providers are CommonJS inside; give the ESM bundle a require().
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    chunkNames: 'chunks/[name]-[hash]',
    logLevel: 'warning',
  });
  const root = fileURLToPath(new URL('..', import.meta.url));
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  await promisify(execFile)(
    process.execPath,
    [
      tsc,
      ...['--declaration', '--emitDeclarationOnly', '--outDir', join(dist, 'types'), '--rootDir', join(root, 'src')],
      ...['--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--strict'],
      ...['--allowImportingTsExtensions', '--rewriteRelativeImportExtensions', '--skipLibCheck', '--types', 'node'],
      join(root, 'src/client/index.ts'),
      join(root, 'src/client/cli.ts'),
    ],
    { cwd: root },
  );
  // tsc keeps the sources' `./x.ts` specifiers in declarations; the package ships `x.d.ts`
  // next to `x.js`, which TypeScript finds from `./x.js`.
  for (const entry of await readdir(join(dist, 'types'), { recursive: true })) {
    if (!entry.endsWith('.d.ts')) continue;
    const file = join(dist, 'types', entry);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace(/(from\s+['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2'));
  }
  return dest;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildServer();
  await buildCli();
  await buildClientPackage();
}
