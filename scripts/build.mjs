// Bundles the Node server into dist/server.mjs (what `npm start` and a container run).
// Running the bundle instead of the TypeScript sources saves ~38 MiB of RSS: Node's type
// stripping loads a WebAssembly compiler into every process (measured: 114 vs 75 MiB idle).
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

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
  // The AWS SDK still has CommonJS inside; give the ESM bundle a require().
  banner: { js: "import{createRequire}from'node:module';const require=createRequire(import.meta.url);" },
  logLevel: 'warning',
};

export async function buildServer() {
  await build({
    ...SERVER_BUILD_OPTIONS,
    entryPoints: [fileURLToPath(new URL('../src/server.ts', import.meta.url))],
    outfile: SERVER_BUNDLE,
  });
  return SERVER_BUNDLE;
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildServer();
  await buildCli();
}
