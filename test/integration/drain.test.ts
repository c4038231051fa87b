/**
 * The graceful drain of the server as `npm start` runs it (the bundle in a child process)
 * against radosgw: SIGTERM during uploads. An upload that ends within UPLOAD_DRAIN_TIMEOUT_MS
 * is stored; a slow one (client throttled, a multipart upload open) is aborted at the
 * deadline with a 503; probes answer throughout (`/readyz` 503, `/healthz` 200); new uploads
 * are refused with 503 SHUTTING_DOWN; the process exits 0 in time; a second signal aborts at
 * once. Afterwards the bucket holds exactly the stored files and no open multipart upload.
 */
import { once } from 'node:events';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildMultipart, CONTENT_TYPE, generatedBytes } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { listKeys, listOpenUploads } from '../helpers/s3-inspect.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';

const endpoint = inject('radosgwEndpoint');
const KiB = 1024;
const MiB = 1024 * KiB;
const DRAIN_MS = 1500;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * POSTs a multipart body of one generated file in `slice`-byte writes every `everyMs`;
 * `sent` counts the bytes written. Resolves with the answer once it ended; an error on the
 * socket after the answer began (the server closing while the client still sends) is ignored.
 */
function throttledUpload(
  url: string,
  size: number,
  slice: number,
  everyMs: number,
  headers: Record<string, string> = {},
): { sent: () => number; answer: Promise<Answer> } {
  const body = buildMultipart([
    { name: 'file', filename: `f-${size}.bin`, data: Buffer.concat([...generatedBytes(size, size)]) },
  ]);
  let sent = 0;
  let stopped = false;
  let answered = false;
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = request(
      url + '/uploads',
      { method: 'POST', headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length, ...headers } },
      (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      },
    );
    req.on('error', (err) => {
      stopped = true;
      if (!answered) reject(err);
    });
    Readable.from(
      (async function* () {
        for (let at = 0; at < body.length && !stopped; at += slice) {
          const piece = body.subarray(at, at + slice);
          yield piece;
          sent += piece.length;
          await new Promise((r) => setTimeout(r, everyMs));
        }
      })(),
    ).pipe(req);
  });
  return { sent: () => sent, answer };
}

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function probe(url: string): Promise<number | 'down'> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 'down';
  }
}

describe.skipIf(!endpoint)('graceful drain on SIGTERM (server bundle, radosgw)', () => {
  let s3: S3Client;
  let bucket: string;

  beforeAll(async () => {
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('drain'));
  });

  afterAll(() => s3?.destroy());

  async function start(drainMs: number): Promise<{ server: ServerProcess; log: () => Array<Record<string, unknown>> }> {
    let out = '';
    const server = await startServerProcess({
      env: {
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        AWS_ACCESS_KEY_ID: RADOSGW_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: RADOSGW_SECRET_KEY,
        UPLOAD_DRAIN_TIMEOUT_MS: String(drainMs),
        UPLOAD_SESSION_SECRET: 'drain-test-session-secret-0123456789',
        LOG_LEVEL: 'info',
      },
      onStdout: (text) => (out += text),
      onStderr: () => {},
    });
    const log = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    return { server, log };
  }

  it('finishes the upload that ends in time, aborts the slow one at the deadline, answers probes throughout, exits 0', async () => {
    const { server, log } = await start(DRAIN_MS);
    const exited = once(server.child, 'exit') as Promise<[number | null, string | null]>;
    // 12 MiB at 2.5 MiB/s: a multipart upload is open when the signal comes, and it cannot end in time.
    const slow = throttledUpload(server.url, 12 * MiB, 256 * KiB, 100);
    await until('the slow upload to pass its first part', () => slow.sent() > 6 * MiB);
    // 512 KiB at ~5 MiB/s: ends well within the drain time.
    const quick = throttledUpload(server.url, 512 * KiB, 64 * KiB, 10);
    await until('the quick upload to start', () => quick.sent() > 0);

    const signalled = Date.now();
    server.child.kill('SIGTERM');
    await until('the draining line', () => log().some((l) => l['message'] === 'draining'));
    const refused = throttledUpload(server.url, 1 * KiB, 64 * KiB, 0);

    const ready: Array<number | 'down'> = [];
    const health: Array<number | 'down'> = [];
    let running = true;
    void exited.then(() => (running = false));
    while (running) {
      const [r, h] = await Promise.all([probe(`${server.url}/readyz`), probe(`${server.url}/healthz`)]);
      if (!running || r === 'down') break;
      ready.push(r);
      health.push(h);
      await new Promise((res) => setTimeout(res, 100));
    }
    const [code, signal] = await exited;
    const tookMs = Date.now() - signalled;

    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(tookMs).toBeLessThan(DRAIN_MS + 5000);
    expect(tookMs).toBeGreaterThanOrEqual(DRAIN_MS - 100);
    expect(ready.length).toBeGreaterThan(3);
    expect(new Set(ready)).toEqual(new Set([503]));
    expect(new Set(health)).toEqual(new Set([200]));

    const refusedAnswer = await refused.answer;
    expect(refusedAnswer.status).toBe(503);
    expect(JSON.parse(refusedAnswer.text)).toMatchObject({ error: { code: 'SHUTTING_DOWN' } });
    expect(refusedAnswer.headers['retry-after']).toBe('1');
    expect(refusedAnswer.headers['connection']).toBe('close');

    const quickAnswer = await quick.answer;
    expect(quickAnswer.status).toBe(201);
    const stored = (JSON.parse(quickAnswer.text) as { files: Array<{ key: string; size: number }> }).files;
    expect(stored.map((f) => f.size)).toEqual([512 * KiB]);

    const slowAnswer = await slow.answer;
    expect(slowAnswer.status).toBe(503);
    expect(JSON.parse(slowAnswer.text)).toMatchObject({ error: { code: 'SHUTTING_DOWN' } });

    expect(await listOpenUploads(s3, bucket)).toEqual([]);
    expect(await listKeys(s3, bucket)).toEqual([stored[0]!.key]);

    const messages = log().map((l) => l['message']);
    expect(messages).toEqual(
      expect.arrayContaining(['signal received', 'draining', 'uploads aborted at the drain deadline', 'drained', 'exit']),
    );
    expect(log().find((l) => l['message'] === 'draining')).toMatchObject({ inFlight: 2, drainTimeoutMs: DRAIN_MS });
    expect(log().find((l) => l['message'] === 'uploads aborted at the drain deadline')).toMatchObject({
      aborted: 1,
      after: 'deadline',
    });
  });

  it('a second signal skips the wait: the upload is aborted at once (NDJSON error line), exit 0', async () => {
    const { server, log } = await start(60_000);
    const exited = once(server.child, 'exit') as Promise<[number | null, string | null]>;
    const before = await listKeys(s3, bucket);
    const slow = throttledUpload(server.url, 12 * MiB, 256 * KiB, 100, { accept: 'application/x-ndjson' });
    await until('the slow upload to pass its first part', () => slow.sent() > 6 * MiB);
    const signalled = Date.now();
    server.child.kill('SIGTERM');
    await until('the draining line', () => log().some((l) => l['message'] === 'draining'));
    // Later than a duplicate delivery of the first signal (npm forwarding a Ctrl-C).
    await new Promise((r) => setTimeout(r, 500));
    server.child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(10_000);

    const answer = await slow.answer;
    expect(answer.status).toBe(200);
    const lines = answer.text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; code?: string });
    expect(lines.at(-1)).toMatchObject({ type: 'error', code: 'SHUTTING_DOWN' });
    expect(await listOpenUploads(s3, bucket)).toEqual([]);
    expect(await listKeys(s3, bucket)).toEqual(before);
    expect(log().find((l) => l['message'] === 'uploads aborted at the drain deadline')).toMatchObject({
      aborted: 1,
      after: 'second signal',
    });
  });
});
