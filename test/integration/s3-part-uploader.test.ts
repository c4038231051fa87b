/**
 * The S3 sink (src/storage/s3-part-uploader.ts) against a real s3rver over HTTP: byte-exact
 * round trips around the part boundaries, one byte budget shared by concurrent files, and the
 * ObjectSink failure contract (src/core/sink.ts): an errored body or an aborted signal never
 * completes an object, an opened multipart upload is aborted before the call settles, and
 * only the hard stop (a deadline) cuts requests in flight (checked against a stand-in S3 that
 * holds its answers).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadError } from '../../src/core/errors.ts';
import { createMemoryBudget } from '../../src/core/memory-budget.ts';
import { bufferClass, PartPool } from '../../src/storage/part-pool.ts';
import { createS3PartUploader, type S3PartUploaderOptions } from '../../src/storage/s3-part-uploader.ts';
import { objectSha256 } from '../helpers/generated-file.ts';
import { generatedBytes } from '../helpers/multipart.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
/** S3's smallest part (s3rver accepts smaller, real S3 does not). */
const PART = 5 * MiB;
/** Chunks that never line up with a part boundary, so copies straddle buffers. */
const CHUNK = 100_004;

let s3: TestS3rver;

beforeAll(async () => {
  s3 = await startS3rver('part-uploader');
});
afterAll(async () => {
  await s3?.close();
});

interface Harness {
  client: S3Client;
  /** Command names in the order they were sent (every attempt's first send). */
  sent: string[];
  logged: Array<{ level: string; message: string }>;
  sink: ReturnType<typeof createS3PartUploader>;
}

function harness(endpoint: string, options: Partial<S3PartUploaderOptions> = {}): Harness {
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The stand-in S3 below answers nothing within a test; fail fast instead of retrying.
    maxAttempts: 1,
  });
  const sent: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push((context as { commandName: string }).commandName);
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  const logged: Harness['logged'] = [];
  const sink = createS3PartUploader({
    client,
    bucket: 'part-uploader',
    partBytes: PART,
    queueSize: 2,
    logger: {
      warn: (message) => logged.push({ level: 'warn', message }),
      error: (message) => logged.push({ level: 'error', message }),
    },
    cleanupTimeoutMs: 1000,
    ...options,
  });
  return { client, sent, logged, sink };
}

function putInput(
  key: string,
  body: Readable,
  signal = new AbortController().signal,
  extra: { hardStop?: AbortSignal; maxBytes?: number } = {},
) {
  return {
    key,
    body,
    contentType: 'application/octet-stream',
    contentDisposition: 'attachment; filename="f.bin"',
    metadata: { note: 'x' },
    signal,
    ...extra,
  };
}

/** A pool over a budget of `parts` full parts. */
function budgetPool(parts: number, reclaimIdleMs?: number): PartPool {
  return new PartPool({
    partBytes: PART,
    budget: createMemoryBudget(parts * PART, 100),
    ...(reclaimIdleMs ? { reclaimIdleMs } : {}),
  });
}

/** SHA-256 of what generatedBytes(size, seed, CHUNK) yields (its bytes depend on the chunk size). */
function expectedSha256(size: number, seed: number): string {
  const hash = createHash('sha256');
  for (const chunk of generatedBytes(size, seed, CHUNK)) hash.update(chunk);
  return hash.digest('hex');
}

async function exists(client: S3Client, key: string): Promise<boolean> {
  try {
    await client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

/** A body that sends `bytes` on demand, then fails with `error` (or stays open when none). */
function failingBody(bytes: number, error?: Error): Readable {
  let sent = 0;
  let failing = false;
  return new Readable({
    read() {
      if (sent < bytes) {
        const n = Math.min(CHUNK, bytes - sent);
        sent += n;
        this.push(Buffer.alloc(n, 7));
        return;
      }
      if (error && !failing) {
        failing = true;
        setTimeout(() => this.destroy(error), 50);
      }
    },
  });
}

const SIZES: Array<[string, number]> = [
  ['0 B', 0],
  ['1 B', 1],
  ['one part - 1 B', PART - 1],
  ['exactly one part', PART],
  ['one part + 1 B', PART + 1],
  ['exactly 3 parts', 3 * PART],
];

describe.each([
  { payload: 'signed payload', unsignedPayload: false },
  { payload: 'UNSIGNED-PAYLOAD', unsignedPayload: true },
])('round trip on s3rver, $payload', ({ unsignedPayload }) => {
  it.each(SIZES)('%s comes back byte for byte', async (_label, size) => {
    const { client, sink, sent } = harness(s3.endpoint, { unsignedPayload });
    const key = `rt/${unsignedPayload ? 'u' : 's'}/${size}.bin`;
    const out = await sink.put(putInput(key, Readable.from(generatedBytes(size, size + 1, CHUNK))));
    expect(out.etag).toMatch(/^"[0-9a-f]+(-\d+)?"$/);
    expect(await objectSha256(client, s3.bucket, key)).toEqual({ sha256: expectedSha256(size, size + 1), size });
    const parts = size <= PART ? 0 : Math.ceil(size / PART);
    // A body of at most one part is one PutObject, whose ETag (the MD5 of the bytes, sent as
    // Content-MD5) confirms them: no read-back. Above, one part per PART bytes and, without
    // checksums to confirm the parts, a HeadObject. The test's own read-back is the GetObject.
    if (parts === 0) {
      expect(sent).toEqual(['PutObjectCommand', 'GetObjectCommand']);
      expect(out.confirmedBy).toBe('etag');
    } else {
      expect(sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(parts);
      expect(sent).toContain('CompleteMultipartUploadCommand');
      expect(sent).toContain('HeadObjectCommand');
    }
    expect(out.storedSize).toBe(size);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
  });
});

describe('memory: one byte budget for all files', () => {
  it('serves concurrent files from the budget; buffers are reused', async () => {
    const pool = budgetPool(2);
    const { client, sink } = harness(s3.endpoint, { pool });
    const size = 2 * PART + 12_345;
    const keys = ['pool/a.bin', 'pool/b.bin', 'pool/c.bin'];
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, pool.budget.inUse)), 1);
    await Promise.all(keys.map((key, i) => sink.put(putInput(key, Readable.from(generatedBytes(size, 100 + i, CHUNK))))));
    clearInterval(watch);
    for (const [i, key] of keys.entries())
      expect((await objectSha256(client, s3.bucket, key)).sha256).toBe(expectedSha256(size, 100 + i));
    expect(peak).toBeLessThanOrEqual(2 * PART);
    expect(pool.inUse).toBe(0);
    expect(pool.budget.waiting).toBe(0);
    client.destroy();
  });

  it('a small file takes its own size from the budget, not a part', async () => {
    const pool = budgetPool(1);
    const { client, sink } = harness(s3.endpoint, { pool });
    const size = 64 * 1024;
    // 16 small files at once within one part's budget: each holds ~64 KiB.
    let peakFiles = 0;
    let peakBytes = 0;
    const acquire = pool.acquire.bind(pool);
    pool.acquire = async (bytes, signal) => {
      const buf = await acquire(bytes, signal);
      peakFiles = Math.max(peakFiles, pool.inUse);
      peakBytes = Math.max(peakBytes, pool.budget.inUse);
      return buf;
    };
    await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        sink.put(
          putInput(`small/${i}.bin`, Readable.from(generatedBytes(size, 400 + i, CHUNK)), undefined, { maxBytes: size + 200 }),
        ),
      ),
    );
    // All 16 held memory at once (a part each would have let one in at a time), ~64 KiB each
    // (their size rounded up to its buffer class).
    expect(peakFiles).toBe(16);
    expect(peakBytes).toBeLessThanOrEqual(16 * bufferClass(size + 200, PART));
    expect((await objectSha256(client, s3.bucket, 'small/3.bin')).sha256).toBe(expectedSha256(size, 403));
    expect(pool.budget.inUse).toBe(0);
    client.destroy();
  });

  it("a multipart file's last part reuses a kept full-part buffer, not a new one of its remainder's size", async () => {
    const pool = budgetPool(4);
    // queueSize 1: one part in flight and one being filled, so two buffers serve the file.
    const { client, sink } = harness(s3.endpoint, { pool, queueSize: 1 });
    const sizes: number[] = [];
    const acquire = pool.acquire.bind(pool);
    pool.acquire = async (bytes, signal, options) => {
      sizes.push(bytes);
      return acquire(bytes, signal, options);
    };
    // The bound is exact (as a Content-Length gives it): 3 parts and a 1 MiB remainder.
    const size = 3 * PART + MiB;
    await sink.put(putInput('last/a.bin', Readable.from(generatedBytes(size, 601, CHUNK)), undefined, { maxBytes: size }));
    expect(await objectSha256(client, s3.bucket, 'last/a.bin')).toEqual({ sha256: expectedSha256(size, 601), size });
    expect(sizes).toEqual([PART, PART, PART, PART]);
    expect(pool.allocated).toBe(2);
    expect(pool.inUse).toBe(0);
    client.destroy();
  });

  it('a file larger than its bound says still stores byte-exact (its buffer grows)', async () => {
    const { client, sink } = harness(s3.endpoint, { pool: budgetPool(3) });
    const size = PART + 77_777;
    await sink.put(putInput('grow/a.bin', Readable.from(generatedBytes(size, 501, CHUNK)), undefined, { maxBytes: 1000 }));
    expect(await objectSha256(client, s3.bucket, 'grow/a.bin')).toEqual({ sha256: expectedSha256(size, 501), size });
    client.destroy();
  });

  it('slow clients keep only the bytes they sent while a waiting file needs memory; all store byte-exact', async () => {
    // Two parts of budget, two slow clients holding a part buffer each: without reclaiming,
    // the fast file would wait until they filled their parts.
    const pool = budgetPool(2, 50);
    const { client, sink } = harness(s3.endpoint, { pool, queueSize: 1 });
    const slowSize = PART + 1000;
    const fastSize = 2 * PART + 7;
    const slowData = Buffer.concat([...generatedBytes(slowSize, 201)]);
    const slows = [0, 1].map((i) => {
      const body = new Readable({ read() {} });
      body.push(slowData.subarray(0, 300_000));
      return { body, put: sink.put(putInput(`reclaim/slow-${i}.bin`, body)) };
    });
    // Each slow file holds a full buffer with 300,000 bytes in it, then its client pauses.
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.budget.inUse).toBe(2 * PART);
    // Without reclaiming this never ends (the slow clients send nothing until it has).
    await sink.put(putInput('reclaim/fast.bin', Readable.from(generatedBytes(fastSize, 202, CHUNK))));
    expect(pool.reclaimed).toBeGreaterThanOrEqual(1);
    // Then the slow clients send the rest: their parked bytes go back into a part buffer first.
    for (const { body } of slows) {
      body.push(slowData.subarray(300_000));
      body.push(null);
    }
    await Promise.all(slows.map((s) => s.put));
    expect((await objectSha256(client, s3.bucket, 'reclaim/fast.bin')).sha256).toBe(expectedSha256(fastSize, 202));
    for (const i of [0, 1])
      expect(await objectSha256(client, s3.bucket, `reclaim/slow-${i}.bin`)).toEqual({
        sha256: createHash('sha256').update(slowData).digest('hex'),
        size: slowSize,
      });
    expect(pool.inUse).toBe(0);
    client.destroy();
  });

  it('a client that keeps sending keeps its buffer', async () => {
    const pool = budgetPool(2, 200);
    const { client, sink } = harness(s3.endpoint, { pool });
    const size = 3 * PART + 5;
    await Promise.all(
      ['steady/a.bin', 'steady/b.bin', 'steady/c.bin'].map((key, i) =>
        sink.put(putInput(key, Readable.from(generatedBytes(size, 300 + i, CHUNK)))),
      ),
    );
    expect(pool.reclaimed).toBe(0);
    client.destroy();
  });
});

describe('failure contract on s3rver', () => {
  it('a body that errors inside the first part stores nothing and opens no upload', async () => {
    const { client, sink, sent } = harness(s3.endpoint);
    const boom = new Error('client went away');
    await expect(sink.put(putInput('fail/early.bin', failingBody(PART - 10, boom)))).rejects.toMatchObject({
      code: 'STORAGE_FAILED',
      cause: boom,
    });
    expect(sent).toEqual([]);
    expect(await exists(client, 'fail/early.bin')).toBe(false);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
  });

  it('a body that errors after exactly one part does not store it as one object', async () => {
    const { client, sink, sent } = harness(s3.endpoint);
    await expect(sink.put(putInput('fail/one-part.bin', failingBody(PART, new Error('cut'))))).rejects.toThrow();
    expect(sent).not.toContain('PutObjectCommand');
    expect(await exists(client, 'fail/one-part.bin')).toBe(false);
    client.destroy();
  });

  it('a body that errors after some parts: no object, AbortMultipartUpload sent before the call settles', async () => {
    const { client, sink, sent } = harness(s3.endpoint);
    let sentWhenSettled: string[] = [];
    const put = sink.put(putInput('fail/late.bin', failingBody(2 * PART + 1000, new Error('cut mid-body'))));
    await expect(
      put.finally(() => {
        sentWhenSettled = [...sent];
      }),
    ).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(sentWhenSettled).toContain('CreateMultipartUploadCommand');
    expect(sentWhenSettled).toContain('AbortMultipartUploadCommand');
    expect(sentWhenSettled).not.toContain('CompleteMultipartUploadCommand');
    expect(await exists(client, 'fail/late.bin')).toBe(false);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
  });

  it('an aborted signal stops the upload: no object, abort sent, rejects with the reason', async () => {
    const { client, sink, sent } = harness(s3.endpoint);
    const controller = new AbortController();
    const reason = new UploadError('CLIENT_CLOSED_REQUEST', 'The client closed the connection');
    // Two parts and then nothing: the body never ends by itself.
    const put = sink.put(putInput('abort/signal.bin', failingBody(2 * PART + 1000), controller.signal));
    await new Promise((r) => setTimeout(r, 300));
    controller.abort(reason);
    await expect(put).rejects.toBe(reason);
    expect(sent).toContain('AbortMultipartUploadCommand');
    expect(sent).not.toContain('CompleteMultipartUploadCommand');
    expect(await exists(client, 'abort/signal.bin')).toBe(false);
    client.destroy();
  });

  it('a signal aborted before the call stores nothing and sends nothing', async () => {
    const { client, sink, sent } = harness(s3.endpoint);
    const reason = new UploadError('CLIENT_CLOSED_REQUEST', 'gone');
    await expect(
      sink.put(putInput('abort/before.bin', Readable.from(generatedBytes(PART * 2, 1)), AbortSignal.abort(reason))),
    ).rejects.toBe(reason);
    expect(sent).toEqual([]);
    client.destroy();
  });
});

/**
 * A stand-in S3 that opens multipart uploads at once but holds every UploadPart answer for
 * `partDelayMs` (Infinity: never answers), and records what it saw: parts answered, part
 * requests cut by the client, aborts, deletes.
 */
async function startSlowS3(partDelayMs: number): Promise<{
  endpoint: string;
  seen: { started: number; answered: number; cut: number; aborts: number; deletes: number };
  close(): Promise<void>;
}> {
  const seen = { started: 0, answered: 0, cut: 0, aborts: 0, deletes: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req: IncomingMessage, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    req.resume();
    if (req.method === 'POST' && url.searchParams.has('uploads')) {
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end('<InitiateMultipartUploadResult><UploadId>u1</UploadId></InitiateMultipartUploadResult>');
      return;
    }
    if (req.method === 'PUT' && url.searchParams.has('partNumber')) {
      seen.started++;
      let answered = false;
      res.on('close', () => {
        if (!answered) seen.cut++;
      });
      req.on('end', () => {
        if (partDelayMs === Infinity) return;
        const t = setTimeout(() => {
          timers.delete(t);
          answered = true;
          seen.answered++;
          res.writeHead(200, { etag: '"e"' }).end();
        }, partDelayMs);
        timers.add(t);
      });
      return;
    }
    if (req.method === 'DELETE') {
      if (url.searchParams.has('uploadId')) seen.aborts++;
      else seen.deletes++;
      res.writeHead(204).end();
      return;
    }
    res.writeHead(400).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Waits (bounded) until the stand-in has seen `n` part requests arrive. */
async function partsArrived(seen: { started: number }, n: number): Promise<void> {
  for (let i = 0; i < 500 && seen.started < n; i++) await new Promise((r) => setTimeout(r, 10));
  expect(seen.started).toBe(n);
}

describe('signal semantics against an S3 that holds its answers', () => {
  it('an abort without a hard stop cuts the parts in flight (a stalled S3 cannot hold the upload), then aborts', async () => {
    const slow = await startSlowS3(400);
    const { client, sink } = harness(slow.endpoint);
    const controller = new AbortController();
    const put = sink.put(putInput('slow/finish.bin', failingBody(2 * PART + 1000), controller.signal));
    await partsArrived(slow.seen, 2);
    controller.abort(new UploadError('CLIENT_CLOSED_REQUEST', 'gone'));
    await expect(put).rejects.toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
    // The stand-in sees the cut sockets close a moment later (bounded wait on a loaded machine).
    for (let i = 0; i < 200 && slow.seen.cut < 2; i++) await new Promise((r) => setTimeout(r, 10));
    // Both parts were cut, not answered; the upload was aborted; nothing to delete (no
    // PutObject or Complete was in flight).
    expect(slow.seen).toMatchObject({ started: 2, answered: 0, cut: 2, aborts: 1, deletes: 0 });
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
    await slow.close();
  });

  it('a hard stop (deadline) cuts parts in flight at once and still aborts', async () => {
    const slow = await startSlowS3(Infinity);
    const { client, sink } = harness(slow.endpoint);
    const controller = new AbortController();
    const hardStop = new AbortController();
    const put = sink.put(
      putInput('slow/timeout.bin', failingBody(2 * PART + 1000), controller.signal, { hardStop: hardStop.signal }),
    );
    await partsArrived(slow.seen, 2);
    const t0 = performance.now();
    const reason = new UploadError('TIMEOUT', 'deadline');
    controller.abort(reason);
    hardStop.abort(reason);
    await expect(put).rejects.toMatchObject({ code: 'TIMEOUT' });
    // This S3 never answers: without the cut the put would wait for the SDK's own timeout (60 s).
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(slow.seen.answered).toBe(0);
    expect(slow.seen.aborts).toBe(1);
    // A request cut in flight may have landed: the key is removed too.
    expect(slow.seen.deletes).toBe(1);
    for (let i = 0; i < 200 && slow.seen.cut < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(slow.seen.cut).toBe(2);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
    await slow.close();
  });
});
