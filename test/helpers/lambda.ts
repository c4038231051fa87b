/**
 * Runs the Lambda function as it ships (the esbuild bundle of functions/upload.ts) under the
 * runtime stand-in of scripts/lambda-runtime.mjs. Each load re-evaluates the module with the
 * given environment, like a cold start; the environment stays set for the test file.
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildFunction } from '../../scripts/build.mjs';
import { installRuntimeGlobals, invoke, type InvokeResult } from '../../scripts/lambda-runtime.mjs';

type Handler = Parameters<typeof invoke>[0];

let bundle: Promise<string> | undefined;
let loads = 0;

export async function loadFunction(env: Record<string, string>): Promise<Handler> {
  bundle ??= mkdtemp(join(tmpdir(), 'fn-')).then((dir) => buildFunction(join(dir, 'upload.mjs')));
  const file = await bundle;
  installRuntimeGlobals();
  // Left in place: the SDK reads credentials from the environment at the first request,
  // not at import. A later load overrides what it names.
  Object.assign(process.env, env);
  const mod = (await import(`${pathToFileURL(file).href}?coldStart=${++loads}`)) as { handler: Handler };
  return mod.handler;
}

export { invoke, type InvokeResult };
