// Runs the Lambda function locally on an event and prints the streamed HTTP response as it
// arrives: the bundle serverless-esbuild would ship, under the runtime stand-in of
// scripts/lambda-runtime.mjs. With no UPLOAD_BUCKET set, an embedded S3 (s3rver) is used.
//
//   npm run invoke:local -- events/rest-two-files.json [--ndjson] [--timeout-ms=N] [--rss] [--quiet]
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { buildFunction, FUNCTION_BUNDLE } from './build.mjs';
import { installRuntimeGlobals, invoke } from './lambda-runtime.mjs';

const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const option = (name) => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const eventPath = args.find((a) => !a.startsWith('--'));
if (!eventPath) {
  console.error('usage: invoke-local.mjs EVENT.json [--ndjson] [--timeout-ms=N] [--rss] [--quiet] [--no-build]');
  process.exit(2);
}

let embedded;
if (!process.env.UPLOAD_BUCKET) {
  // TypeScript source through Node's type stripping: fine here, but it adds ~38 MiB of RSS,
  // so memory measurements (--rss) should point UPLOAD_BUCKET/S3_ENDPOINT at a running S3.
  const { startEmbeddedS3 } = await import('../src/embedded-s3.ts');
  embedded = await startEmbeddedS3({ directory: '.data/s3', bucket: 'uploads' });
  Object.assign(process.env, {
    UPLOAD_BUCKET: 'uploads',
    S3_ENDPOINT: embedded.endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  });
}

const event = JSON.parse(readFileSync(eventPath, 'utf8'));
if (flag('ndjson')) {
  if (event.version === '2.0') event.headers.accept = 'application/x-ndjson';
  else {
    event.headers.Accept = 'application/x-ndjson';
    if (event.multiValueHeaders) event.multiValueHeaders.Accept = ['application/x-ndjson'];
  }
}

if (!flag('no-build')) await buildFunction();
installRuntimeGlobals();
const { handler } = await import(pathToFileURL(FUNCTION_BUNDLE).href);
const quiet = flag('quiet');
const result = await invoke(handler, event, {
  timeoutMs: Number(option('timeout-ms') ?? 60_000),
  onChunk: quiet
    ? undefined
    : (chunk) => process.stderr.write(`[stream] ${JSON.stringify(chunk.toString('utf8').replace(/\0/g, '\\0'))}\n`),
});
const out = {
  statusCode: result.statusCode,
  headers: result.headers,
  body: result.body,
  streamEndedBeforeReturn: result.streamEndedBeforeReturn,
};
if (flag('rss')) {
  const status = readFileSync('/proc/self/status', 'utf8');
  out.peakRssKiB = Number(/^VmHWM:\s+(\d+)/m.exec(status)[1]);
}
process.stdout.write(JSON.stringify(out) + '\n');
await embedded?.close();
