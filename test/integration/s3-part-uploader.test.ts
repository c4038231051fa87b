/**
 * The prototype sink (src/storage/s3-part-uploader.ts, pooled part buffers, no lib-storage)
 * against a real s3rver over HTTP: byte-exact round trips around the part boundaries, a pool
 * shared by concurrent files, and the ObjectSink failure contract (src/core/sink.ts): an
 * errored body or an aborted signal never completes an object, an opened multipart upload is
 * aborted before the call settles, and only a TIMEOUT cuts requests in flight (checked
 * against a stand-in S3 that holds its answers).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UploadError } from '../../src/core/errors.ts';
import { createS3PartUploader, PartPool, type S3PartUploaderOptions } from '../../src/storage/s3-part-uploader.ts';
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

function putInput(key: string, body: Readable, signal = new AbortController().signal) {
  return {
    key,
    body,
    contentType: 'application/octet-stream',
    contentDisposition: 'attachment; filename="f.bin"',
    metadata: { note: 'x' },
    signal,
  };
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
    // A body of at most one part is one PutObject (then the size is read back); above, one
    // part per PART bytes. The test's own read-back is the GetObject.
    if (parts === 0) expect(sent).toEqual(['PutObjectCommand', 'HeadObjectCommand', 'GetObjectCommand']);
    else {
      expect(sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(parts);
      expect(sent).toContain('CompleteMultipartUploadCommand');
      expect(sent).toContain('HeadObjectCommand');
    }
    expect(out.storedSize).toBe(size);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
  });
});

describe('part pool', () => {
  it('serves concurrent files from a fixed set of buffers, reused', async () => {
    const pool = new PartPool(PART, 2);
    const { client, sink } = harness(s3.endpoint, { pool });
    const size = 2 * PART + 12_345;
    const keys = ['pool/a.bin', 'pool/b.bin', 'pool/c.bin'];
    await Promise.all(keys.map((key, i) => sink.put(putInput(key, Readable.from(generatedBytes(size, 100 + i, CHUNK))))));
    for (const [i, key] of keys.entries())
      expect((await objectSha256(client, s3.bucket, key)).sha256).toBe(expectedSha256(size, 100 + i));
    // 3 files x 3 parts went through 2 buffers.
    expect(pool.created).toBe(2);
    expect(pool.inUse).toBe(0);
    expect(pool.waiting).toBe(0);
    client.destroy();
  });

  it('a slow client gives its half-filled buffer back to a waiting file, and both store byte-exact', async () => {
    // One buffer for the whole sink: without reclaiming, the fast file would wait until the
    // slow client filled its part.
    const pool = new PartPool(PART, 1, 50);
    const { client, sink } = harness(s3.endpoint, { pool, queueSize: 1 });
    const slowSize = PART + 1000;
    const fastSize = 2 * PART + 7;
    const slowData = Buffer.concat([...generatedBytes(slowSize, 201)]);
    const slow = new Readable({ read() {} });
    slow.push(slowData.subarray(0, 300_000));
    const slowPut = sink.put(putInput('reclaim/slow.bin', slow));
    // The slow file holds the only buffer with 300,000 bytes in it, then its client pauses.
    await new Promise((r) => setTimeout(r, 20));
    expect(pool.inUse).toBe(1);
    // Without reclaiming this never ends (the slow client sends nothing until it has).
    await sink.put(putInput('reclaim/fast.bin', Readable.from(generatedBytes(fastSize, 202, CHUNK))));
    expect(pool.reclaimed).toBeGreaterThanOrEqual(1);
    // Then the slow client sends the rest: its parked bytes go back into a buffer first.
    slow.push(slowData.subarray(300_000));
    slow.push(null);
    await slowPut;
    expect((await objectSha256(client, s3.bucket, 'reclaim/fast.bin')).sha256).toBe(expectedSha256(fastSize, 202));
    expect(await objectSha256(client, s3.bucket, 'reclaim/slow.bin')).toEqual({
      sha256: createHash('sha256').update(slowData).digest('hex'),
      size: slowSize,
    });
    expect(pool.created).toBe(1);
    expect(pool.inUse).toBe(0);
    client.destroy();
  });

  it('a client that keeps sending keeps its buffer', async () => {
    const pool = new PartPool(PART, 2, 200);
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
  seen: { answered: number; cut: number; aborts: number; deletes: number };
  close(): Promise<void>;
}> {
  const seen = { answered: 0, cut: 0, aborts: 0, deletes: 0 };
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

describe('signal semantics against an S3 that holds its answers', () => {
  it('any other reason cuts the parts in flight (a stalled S3 cannot hold the upload), then aborts', async () => {
    const slow = await startSlowS3(400);
    const { client, sink } = harness(slow.endpoint);
    const controller = new AbortController();
    const put = sink.put(putInput('slow/finish.bin', failingBody(2 * PART + 1000), controller.signal));
    await new Promise((r) => setTimeout(r, 150));
    controller.abort(new UploadError('CLIENT_CLOSED_REQUEST', 'gone'));
    await expect(put).rejects.toMatchObject({ code: 'CLIENT_CLOSED_REQUEST' });
    await new Promise((r) => setTimeout(r, 50));
    // Both parts were cut, not answered; the upload was aborted; nothing to delete (no
    // PutObject or Complete was in flight).
    expect(slow.seen).toMatchObject({ answered: 0, cut: 2, aborts: 1, deletes: 0 });
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
    await slow.close();
  });

  it('a TIMEOUT cuts parts in flight at once and still aborts', async () => {
    const slow = await startSlowS3(Infinity);
    const { client, sink } = harness(slow.endpoint);
    const controller = new AbortController();
    const put = sink.put(putInput('slow/timeout.bin', failingBody(2 * PART + 1000), controller.signal));
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    controller.abort(new UploadError('TIMEOUT', 'deadline'));
    await expect(put).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(slow.seen.answered).toBe(0);
    expect(slow.seen.aborts).toBe(1);
    // A request cut in flight may have landed: the key is removed too.
    expect(slow.seen.deletes).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(slow.seen.cut).toBe(2);
    expect(sink.pool.inUse).toBe(0);
    client.destroy();
    await slow.close();
  });
});
