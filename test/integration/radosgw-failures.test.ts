/**
 * The error cases of node-server.test.ts ("errors: stable code, nothing stored, server stays
 * up") against radosgw, which, unlike s3rver, lists multipart uploads: after each failure
 * ListMultipartUploads must be empty and ListObjectsV2 unchanged. The server talks to radosgw
 * through the fault proxy with no rules, only to count S3 calls: cases that get as far as
 * S3 must show the multipart upload they started being aborted, not merely absent.
 */
import { request } from 'node:http';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { BAD_REQUESTS, file } from '../helpers/error-cases.ts';
import { get, post } from '../helpers/http.ts';
import { buildMultipart, CONTENT_TYPE, streamMultipart } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { deleteKeys, destroyBucket, listKeys, listOpenUploads, pollUntil } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const PART = 5 * MiB;
/** Smaller than node-server.test.ts's 64 MiB: radosgw's memstore holds what we write. */
const MAX_FILE = 12 * MiB;

describe.skipIf(!endpoint)('failures against radosgw leave no multipart upload and no object', () => {
  let direct: S3Client;
  let bucket: string;
  let proxy: FaultProxy;
  let server: RunningServer;
  let url: string;
  let before: string[];

  async function startWith(env: Record<string, string>): Promise<RunningServer> {
    return startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: proxy.url,
        S3_PART_BYTES: String(PART),
        UPLOAD_MAX_FILE_BYTES: String(MAX_FILE),
        UPLOAD_MAX_FILES: '4',
        UPLOAD_MAX_FIELDS: '4',
        UPLOAD_MAX_TOTAL_BYTES: String(100 * MiB),
        ...env,
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );
  }

  beforeAll(async () => {
    direct = radosgwClient(endpoint);
    bucket = await createTestBucket(direct, uniqueBucketName('failures'));
    proxy = await startFaultProxy(endpoint);
    server = await startWith({});
    url = server.url;
    // A file that stays through the whole suite: "unchanged" must mean unchanged, not empty.
    const keep = await post(`${url}/uploads`, buildMultipart([{ name: 'k', filename: 'keep.txt', data: 'keep' }]), {
      headers: { 'content-type': CONTENT_TYPE },
    });
    expect(keep.status).toBe(201);
  });

  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    if (direct) {
      await destroyBucket(direct, bucket);
      direct.destroy();
    }
  });

  beforeEach(async () => {
    before = await listKeys(direct, bucket);
    expect(before).toHaveLength(1);
    proxy.clearLog();
  });

  /** The invariant after every failure; clean-up may finish after the response (bounded poll). */
  afterEach(async () => {
    const left = await pollUntil(
      async () => ({ open: await listOpenUploads(direct, bucket), keys: await listKeys(direct, bucket) }),
      (x) => x.open.length === 0 && x.keys.join() === before.join(),
      { timeoutMs: 10_000 },
    );
    expect(left.open, 'open multipart uploads').toEqual([]);
    expect(left.keys, 'objects').toEqual(before);
  });

  /** A multipart upload was started for the request, and aborted. */
  function expectStartedAndAborted(): void {
    expect(proxy.count('CreateMultipartUpload')).toBeGreaterThanOrEqual(1);
    expect(proxy.count('AbortMultipartUpload')).toBeGreaterThanOrEqual(proxy.count('CreateMultipartUpload'));
    expect(proxy.count('CompleteMultipartUpload')).toBe(0);
  }

  it.each(BAD_REQUESTS)('%s -> %d %s', async (_label, headers, body, status, code) => {
    const res = await post(`${url}/uploads`, body, { headers });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json).toMatchObject({ error: { code, message: expect.any(String) } });
    expect((await get(`${url}/healthz`)).status).toBe(200);
  });

  it('a file over the limit -> 413 FILE_TOO_LARGE, multipart upload aborted, earlier file deleted', async () => {
    const body = streamMultipart([
      { name: 'small', filename: 's.bin', size: 100, seed: 1 },
      { name: 'big', filename: 'b.bin', size: MAX_FILE + 1, seed: 2 },
    ]);
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(413);
    const error = (res.json as { error: { code: string; message: string; deleted?: string[] } }).error;
    expect(error.code).toBe('FILE_TOO_LARGE');
    expect(error.deleted).toHaveLength(1);
    expect(error.message).toMatch(/was deleted/);
    expectStartedAndAborted();
    expect(proxy.count('DeleteObject')).toBeGreaterThanOrEqual(1);
  });

  it('a file of exactly the limit is stored (the boundary of FILE_TOO_LARGE)', async () => {
    const body = streamMultipart([{ name: 'f', filename: 'exact.bin', size: MAX_FILE, seed: 3 }]);
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(201);
    const key = (res.json as { files: Array<{ key: string; size: number }> }).files[0]!;
    expect(key.size).toBe(MAX_FILE);
    await deleteKeys(direct, bucket, [key.key]);
  });

  it('a body over the total limit -> 413 PAYLOAD_TOO_LARGE, multipart upload aborted', async () => {
    const small = await startWith({ UPLOAD_MAX_TOTAL_BYTES: String(6 * MiB) });
    try {
      const body = streamMultipart([{ name: 'f', filename: 'f.bin', size: 7 * MiB, seed: 5 }]);
      const res = await post(`${small.url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
      expect(res.status).toBe(413);
      expect(res.json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
      expectStartedAndAborted();
    } finally {
      await small.close();
    }
  });

  it('NDJSON: a failure after the first byte is a final error line, upload aborted', async () => {
    const body = streamMultipart([{ name: 'f', filename: 'big.bin', size: MAX_FILE + 1, seed: 1 }]);
    const res = await post(`${url}/uploads`, body.stream, {
      headers: { 'content-type': CONTENT_TYPE, accept: 'application/x-ndjson' },
    });
    expect(res.status).toBe(200);
    expect(res.lines.at(-1)).toMatchObject({ type: 'error', code: 'FILE_TOO_LARGE', message: expect.any(String) });
    expectStartedAndAborted();
  });

  it('the object store failing (no such bucket) -> 502 STORAGE_FAILED without internals', async () => {
    const broken = await startWith({ UPLOAD_BUCKET: 'no-such-bucket-here' });
    try {
      for (const size of [10, PART + 10]) {
        const body = streamMultipart([{ name: 'f', filename: 'f.bin', size, seed: 4 }]);
        const res = await post(`${broken.url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
        expect(res.status).toBe(502);
        expect(res.json).toEqual({
          error: {
            code: 'STORAGE_FAILED',
            message: expect.stringMatching(/^The object store failed to store the file \(404 NoSuchBucket\)/),
          },
        });
        expect(res.text).not.toMatch(/at .*\.ts|stack/);
      }
    } finally {
      await broken.close();
    }
  });

  it('unknown routes and methods', async () => {
    expect((await get(`${url}/nope`)).status).toBe(404);
    const res = await fetch(`${url}/uploads`);
    expect(res.status).toBe(405);
    expect(await res.json()).toMatchObject({ error: { code: 'METHOD_NOT_ALLOWED' } });
    expect(proxy.requests).toEqual([]);
  });

  it('a client that disconnects mid-upload: multipart upload aborted, nothing left, server keeps serving', async () => {
    const body = streamMultipart([{ name: 'f', filename: 'cut.bin', size: 32 * MiB, seed: 11 }]);
    await new Promise<void>((resolve) => {
      const req = request(`${url}/uploads`, { method: 'POST', headers: { 'content-type': CONTENT_TYPE } });
      req.on('error', () => resolve());
      let sent = 0;
      body.stream.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        if (!req.write(chunk)) body.stream.pause();
        if (sent > 12 * MiB) {
          body.stream.destroy();
          req.destroy();
          resolve();
        }
      });
      req.on('drain', () => body.stream.resume());
    });
    await pollUntil(
      async () => proxy.count('AbortMultipartUpload'),
      (n) => n > 0,
      { timeoutMs: 10_000 },
    );
    expectStartedAndAborted();
    const ok = await post(`${url}/uploads`, buildMultipart([file(5)]), { headers: { 'content-type': CONTENT_TYPE } });
    expect(ok.status).toBe(201);
    await deleteKeys(direct, bucket, [(ok.json as { files: Array<{ key: string }> }).files[0]!.key]);
  });

  it('an upload that stops sending is closed by the idle timeout and aborted', async () => {
    const strict = await startWith({ UPLOAD_IDLE_TIMEOUT_MS: '600' });
    try {
      const body = streamMultipart([{ name: 'f', filename: 'stall.bin', size: 8 * MiB, seed: 12 }]);
      const closed = await new Promise<boolean>((resolve) => {
        const req = request(`${strict.url}/uploads`, {
          method: 'POST',
          headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length },
        });
        req.on('error', () => resolve(true));
        req.on('close', () => resolve(true));
        req.on('response', (res) => {
          res.resume();
          res.on('close', () => resolve(true));
        });
        let sent = 0;
        body.stream.on('data', (chunk: Buffer) => {
          // Send 6 MiB (one part reaches S3), then nothing.
          if (sent >= 6 * MiB) return body.stream.pause();
          sent += chunk.length;
          req.write(chunk);
        });
        setTimeout(() => resolve(false), 15_000);
      });
      body.stream.destroy();
      expect(closed).toBe(true);
      await pollUntil(
        async () => proxy.count('AbortMultipartUpload'),
        (n) => n > 0,
        { timeoutMs: 10_000 },
      );
      expectStartedAndAborted();
    } finally {
      await strict.close();
    }
  });
});
