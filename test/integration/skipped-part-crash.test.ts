/**
 * Regression test (found by test/integration/fuzz.test.ts, e.g. FUZZ_SEED=660416452
 * FUZZ_RUNS=4000): a file part the core skips (a part without a name, or any file part after
 * the request already failed, e.g. on FIELD_TOO_LARGE) used to be resumed without an 'error'
 * listener. When the body then ended inside that part, busboy destroyed the file stream with
 * "Unexpected end of form" (busboy/lib/types/multipart.js _final -> _destroy), nobody
 * listened, and the process died of an uncaught exception. The Lambda adapter feeds the body
 * from a buffer, so every such request crashed the function. Fixed by `discard()` in
 * src/core/upload-files.ts.
 *
 * The cases run in a child process (an uncaught exception there is the finding, not a crash
 * of the test runner), once through the core and once through the Lambda bundle.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFunction } from '../../scripts/build.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const CASES = {
  'unnamed file part, body ends inside it': Buffer.from(
    '--bb\r\nContent-Disposition: form-data; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\nabcdef',
  ),
  'file part after FIELD_TOO_LARGE, body ends inside it': Buffer.from(
    '--bb\r\nContent-Disposition: form-data; name="a"\r\n\r\n' +
      'x'.repeat(70_000) +
      '\r\n--bb\r\nContent-Disposition: form-data; name="f"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\nabcdef',
  ),
};

/** Runs every case in a fresh Node process; prints one JSON object per case. */
const SCRIPT = `
import { Readable } from 'node:stream';
const [, , root, fnBundle, casesJson] = process.argv;
const cases = JSON.parse(casesJson);
const { uploadFiles } = await import(root + 'src/core/upload-files.ts');
const { MemorySink } = await import(root + 'test/helpers/memory-sink.ts');
const { installRuntimeGlobals, invoke } = await import(root + 'scripts/lambda-runtime.mjs');
const { restEvent } = await import(root + 'scripts/make-events.mjs');
Object.assign(process.env, { UPLOAD_BUCKET: 'crash-test', S3_ENDPOINT: 'http://127.0.0.1:9', AWS_ACCESS_KEY_ID: 'a',
  AWS_SECRET_ACCESS_KEY: 'b', LOG_LEVEL: 'silent', AWS_REGION: 'us-east-1' });
installRuntimeGlobals();
const { handler } = await import(fnBundle);
let uncaught = [];
process.on('uncaughtException', (e) => uncaught.push(String(e && e.message)));
const settle = () => new Promise((r) => setTimeout(r, 100));
for (const [name, b64] of Object.entries(cases)) {
  const body = Buffer.from(b64, 'base64');
  uncaught = [];
  const events = [];
  for await (const e of uploadFiles(
    { headers: { 'content-type': 'multipart/form-data; boundary=bb' }, body: Readable.from([body]) },
    { sink: new MemorySink(), limits: { maxFileBytes: 1e6, maxFiles: 3, maxFields: 3, maxFieldBytes: 65536, maxTotalBytes: 1e7 }, keyPrefix: 'u/' },
  )) events.push(e.type === 'error' ? e.code : e.type);
  await settle();
  console.log(JSON.stringify({ via: 'core', name, events, uncaught }));
  uncaught = [];
  const res = await invoke(handler, restEvent({ headers: { 'Content-Type': 'multipart/form-data; boundary=bb' }, body }));
  await settle();
  console.log(JSON.stringify({ via: 'lambda', name, status: res.statusCode, uncaught }));
}
`;

interface Result {
  via: 'core' | 'lambda';
  name: string;
  events?: string[];
  status?: number;
  uncaught: string[];
}

describe('a skipped file part cut short must not crash the process', () => {
  let dir: string;
  let results: Result[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'skipped-part-'));
    const fnBundle = await buildFunction(join(dir, 'upload.mjs'));
    const script = join(dir, 'run.mjs');
    await writeFile(script, SCRIPT);
    const cases = Object.fromEntries(Object.entries(CASES).map(([k, v]) => [k, v.toString('base64')]));
    const { stdout } = await promisify(execFile)(process.execPath, [script, ROOT, fnBundle, JSON.stringify(cases)], {
      cwd: ROOT,
      timeout: 30_000,
    });
    results = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Result);
    console.log(`[skipped-part] ${results.map((r) => `${r.via}/${r.name}: uncaught ${JSON.stringify(r.uncaught)}`).join('; ')}`);
  }, 60_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('every case ran and still answered with its 4xx', () => {
    expect(results).toHaveLength(2 * Object.keys(CASES).length);
    for (const r of results.filter((x) => x.via === 'core'))
      expect(r.events?.at(-1)).toMatch(/MALFORMED_MULTIPART|FIELD_TOO_LARGE/);
    for (const r of results.filter((x) => x.via === 'lambda')) expect([400, 413]).toContain(r.status);
  });

  it.each(Object.keys(CASES).flatMap((name) => [['core', name] as const, ['lambda', name] as const]))(
    '%s: %s -> no uncaught exception',
    (via, name) => {
      const r = results.find((x) => x.via === via && x.name === name);
      expect(r).toBeDefined();
      expect(r!.uncaught).toEqual([]);
    },
  );
});
