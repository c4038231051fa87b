/**
 * Runs the Lambda function as it ships (the esbuild bundle of functions/upload.ts) as Lambda
 * runs it: in its own process under AWS's runtime interface client (aws-lambda-ric, the code of
 * the managed nodejs24.x runtime), against the local Runtime API of
 * scripts/lambda-runtime-api.mjs. Each loadFunction() is one function with its environment;
 * its process starts at the first invocation (a cold start). Close them with closeFunctions().
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { buildFunction } from '../../scripts/build.mjs';
import {
  startLambdaRuntime,
  type LambdaRuntime,
  type RuntimeInvokeOptions,
  type RuntimeInvokeResult,
} from '../../scripts/lambda-runtime-api.mjs';

export type LambdaFunction = LambdaRuntime;
export type InvokeResult = RuntimeInvokeResult;

let bundleDir: Promise<string> | undefined;
const started = new Set<LambdaRuntime>();

/** The directory holding upload.mjs (LAMBDA_TASK_ROOT), built once per test file. */
export function functionTaskRoot(): Promise<string> {
  bundleDir ??= mkdtemp(join(tmpdir(), 'fn-')).then(async (dir) => {
    await buildFunction(join(dir, 'upload.mjs'));
    return dir;
  });
  return bundleDir;
}

/** The shipped function with these environment variables (nothing of the test's leaks in). */
export async function loadFunction(env: Record<string, string>): Promise<LambdaFunction> {
  const fn = await startLambdaRuntime({
    taskRoot: await functionTaskRoot(),
    handler: 'upload.handler',
    env,
    functionName: 's3-stream-upload-local-upload',
  });
  started.add(fn);
  return fn;
}

/** Runs a function from a directory of test fixtures (test/fixtures/lambda/). */
export async function loadFixtureFunction(
  handler: string,
  env: Record<string, string> = {},
  { freeze = true }: { freeze?: boolean } = {},
): Promise<LambdaFunction> {
  const fn = await startLambdaRuntime({
    taskRoot: new URL('../fixtures/lambda/', import.meta.url).pathname,
    handler,
    env,
    freeze,
  });
  started.add(fn);
  return fn;
}

export function invoke(fn: LambdaFunction, event: unknown, options?: RuntimeInvokeOptions): Promise<InvokeResult> {
  return fn.invoke(event, options);
}

export async function closeFunctions(): Promise<void> {
  await Promise.all([...started].map((fn) => fn.close()));
  started.clear();
}

// A safety net for a test file that forgets closeFunctions(): its sandboxes sit frozen
// (SIGSTOP) between invocations, and the 'exit' handler meant to kill them does not run when
// vitest ends the worker, so they outlived `npm test`. Registered in every test file that
// imports this helper.
afterAll(closeFunctions);
