/**
 * S3 failing under the service: a fault proxy (test/helpers/fault-proxy.ts) sits between the
 * Node server (in process) and a real radosgw and fails chosen S3 calls. What must hold:
 * - transient faults (500, 503 SlowDown, connection reset, lost response) are retried by the
 *   SDK and the stored object is byte-exact (GetObject + SHA-256, straight from radosgw);
 * - persistent faults give 502 STORAGE_FAILED, the multipart upload is aborted
 *   (AbortMultipartUpload seen by the proxy, ListMultipartUploads empty), no object is left;
 * - a failing abort is retried and logged and never replaces the original error.
 *
 * S3_PART_BYTES=5MiB, so an 11 MiB file is three UploadParts (5 + 5 + 1 MiB + a bit).
 */
import { AbortMultipartUploadCommand, type S3Client } from '@aws-sdk/client-s3';
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { isOp, startFaultProxy, type FaultProxy, type FaultRule } from '../helpers/fault-proxy.ts';
import { post } from '../helpers/http.ts';
import { CONTENT_TYPE, streamMultipart } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { deleteKeys, destroyBucket, listKeys, listOpenUploads, pollUntil, readBack } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const PART = 5 * MiB;
/** Three parts: two full, one short. */
const SIZE = 2 * PART + MiB + 321;

interface LogLine {
  level: string;
  message: string;
  attempt?: number;
  uploadId?: string;
  key?: string;
  err?: { name?: string; httpStatus?: number };
  cause?: unknown;
}

interface Service {
  url: string;
  logs: LogLine[];
  close(): Promise<void>;
}

interface UploadResponse {
  files?: Array<{ key: string; size: number; filename: string }>;
  error?: { code: string; message: string };
}

let seed = 100;

describe.skipIf(!endpoint)('S3 faults between the service and radosgw', () => {
  const figures = { injected: 0, survived: 0, persistent: 0, orphanedUploads: 0 };
  let direct: S3Client;
  let bucket: string;
  let proxy: FaultProxy;
  let service: Service | undefined;

  beforeAll(async () => {
    direct = radosgwClient(endpoint);
    bucket = await createTestBucket(direct, uniqueBucketName('faults'));
    proxy = await startFaultProxy(endpoint);
  });

  afterEach(async () => {
    proxy.setRules([]);
    proxy.releaseStalled();
    await service?.close();
    service = undefined;
  });

  afterAll(async () => {
    await proxy?.close();
    if (direct) {
      const left = await destroyBucket(direct, bucket);
      figures.orphanedUploads += left.uploads;
      direct.destroy();
    }
    const total = Object.values(proxy?.injected ?? {}).reduce((a, b) => a + b, 0);
    console.log(
      `[faults] ${total} faults injected (${JSON.stringify(proxy?.injected)}); ` +
        `${figures.survived} transient-fault uploads stored byte-exact; ${figures.persistent} persistent-fault requests ` +
        `answered 502 and cleaned; open multipart uploads left at the end: ${figures.orphanedUploads}`,
    );
  });

  async function startService(env: Record<string, string> = {}): Promise<Service> {
    const logs: LogLine[] = [];
    const logger = createLogger('debug', {}, (line) => logs.push(JSON.parse(line) as LogLine));
    const config = loadConfig({
      PORT: '0',
      UPLOAD_BUCKET: bucket,
      S3_ENDPOINT: proxy.url,
      S3_PART_BYTES: String(PART),
      UPLOAD_MAX_FILE_BYTES: String(64 * MiB),
      ...env,
    });
    const running: RunningServer = await startServer(config, {
      s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
      logger,
    });
    service = { url: running.url, logs, close: () => running.close() };
    return service;
  }

  async function upload(url: string, size: number, seed: number) {
    const body = streamMultipart([{ name: 'file', filename: `f${seed}.bin`, size, seed }]);
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    return { res, json: res.json as UploadResponse, sha256: body.sha256 };
  }

  /** The invariant after any failure: no open upload, no new object. */
  async function expectNothingLeft(before: string[]): Promise<void> {
    const open = await listOpenUploads(direct, bucket);
    figures.orphanedUploads += open.length;
    expect(open).toEqual([]);
    expect(await listKeys(direct, bucket)).toEqual(before);
  }

  describe('transient faults are retried and the object is byte-exact', () => {
    const cases: Array<[string, FaultRule, number]> = [
      ['500 on the 2nd UploadPart', { match: isOp('UploadPart'), nth: 2, times: 1, action: '500' }, SIZE],
      ['503 SlowDown on the 1st UploadPart, twice', { match: isOp('UploadPart'), times: 2, action: '503-slowdown' }, SIZE],
      ['connection reset on the 3rd UploadPart', { match: isOp('UploadPart'), nth: 3, times: 1, action: 'reset' }, SIZE],
      ['lost response of the 1st UploadPart', { match: isOp('UploadPart'), times: 1, action: 'drop-response' }, SIZE],
      ['500 on CreateMultipartUpload', { match: isOp('CreateMultipartUpload'), times: 1, action: '500' }, SIZE],
      ['503 SlowDown on CreateMultipartUpload', { match: isOp('CreateMultipartUpload'), times: 1, action: '503-slowdown' }, SIZE],
      ['connection reset on CreateMultipartUpload', { match: isOp('CreateMultipartUpload'), times: 1, action: 'reset' }, SIZE],
      ['500 on CompleteMultipartUpload', { match: isOp('CompleteMultipartUpload'), times: 1, action: '500' }, SIZE],
      ['reset on CompleteMultipartUpload', { match: isOp('CompleteMultipartUpload'), times: 1, action: 'reset' }, SIZE],
      ['500 on a single PutObject (file under one part)', { match: isOp('PutObject'), times: 2, action: '500' }, MiB + 7],
      ['reset on a single PutObject', { match: isOp('PutObject'), times: 1, action: 'reset' }, 3 * MiB],
      ['500 on the HeadObject that reads the size back', { match: isOp('HeadObject'), times: 1, action: '500' }, SIZE],
    ];

    it.each(cases)('%s -> 201, byte-exact', async (_label, rule, size) => {
      const { url } = await startService();
      proxy.setRules([rule]);
      proxy.clearLog();
      const { res, json, sha256 } = await upload(url, size, ++seed);
      const injected = proxy.requests.filter((r) => r.action !== 'forward');
      expect(injected.length).toBe(rule.times);
      expect(res.status, res.text).toBe(201);
      const file = json.files![0]!;
      expect(file.size).toBe(size);
      const back = await readBack(direct, bucket, file.key);
      expect(back.size).toBe(size);
      expect(back.sha256).toBe(sha256[0]);
      expect(await listOpenUploads(direct, bucket)).toEqual([]);
      figures.survived++;
      await deleteKeys(direct, bucket, [file.key]);
    });
  });

  describe('persistent faults: 502 STORAGE_FAILED, upload aborted, nothing stored', () => {
    it.each([
      ['every UploadPart fails with 500', isOp('UploadPart'), '500', /\(500 InternalError\)/],
      ['every UploadPart is throttled (503 SlowDown)', isOp('UploadPart'), '503-slowdown', /\(503 SlowDown\)/],
      ['every CompleteMultipartUpload fails with 500', isOp('CompleteMultipartUpload'), '500', /\(500 InternalError\)/],
    ] as const)('%s', async (_label, match, action, detail) => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match, action }]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 5);
      expect(res.status, res.text).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(json.error?.message).toMatch(detail);
      // One multipart upload was started, and it was aborted (not left for the lifecycle rule).
      expect(proxy.count('CreateMultipartUpload')).toBe(1);
      expect(proxy.count('AbortMultipartUpload', 'forward')).toBeGreaterThanOrEqual(1);
      expect(proxy.count('CompleteMultipartUpload', 'forward')).toBe(0);
      figures.persistent++;
      await expectNothingLeft(before);
    });

    it('CreateMultipartUpload always failing: 502, nothing to abort, nothing stored', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match: isOp('CreateMultipartUpload'), action: '500' }]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 6);
      expect(res.status).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(proxy.count('UploadPart')).toBe(0);
      figures.persistent++;
      await expectNothingLeft(before);
    });
  });

  describe('clean-up of what was already stored', () => {
    it('HeadObject (size read-back) failing: 502, the completed object is deleted, nothing left', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match: isOp('HeadObject'), action: '500' }]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 20);
      expect(res.status).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(proxy.count('CompleteMultipartUpload', 'forward')).toBe(1);
      expect(proxy.count('DeleteObject', 'forward')).toBeGreaterThanOrEqual(1);
      figures.persistent++;
      await expectNothingLeft(before);
    });

    it('DeleteObject of an earlier file failing: 502 lists it in notDeleted and logs it; only that object is left', async () => {
      const { url, logs } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([
        { match: isOp('UploadPart'), action: '500' },
        { match: isOp('DeleteObject'), action: '503-slowdown' },
      ]);
      proxy.clearLog();
      const body = streamMultipart([
        { name: 'first', filename: 'first.bin', size: 1000, seed: 21 },
        { name: 'second', filename: 'second.bin', size: SIZE, seed: 22 },
      ]);
      const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
      const error = (res.json as { error: { code: string; message: string; notDeleted?: string[]; deleted?: string[] } }).error;
      expect(res.status).toBe(502);
      expect(error.code).toBe('STORAGE_FAILED');
      expect(error.message).toMatch(/\(500 InternalError\)/);
      expect(error.notDeleted).toHaveLength(1);
      expect(error.message).toContain(`could not delete: ${error.notDeleted![0]}`);
      expect(logs.filter((l) => l.level === 'error' && l.key === error.notDeleted![0])).not.toEqual([]);
      // The second file's upload was aborted; the first file is the one object left, as reported.
      expect(await listOpenUploads(direct, bucket)).toEqual([]);
      const after = await listKeys(direct, bucket);
      expect(after.filter((k) => !before.includes(k))).toEqual(error.notDeleted);
      proxy.setRules([]);
      await deleteKeys(direct, bucket, error.notDeleted!);
      figures.persistent++;
      await expectNothingLeft(before);
    });
  });

  describe('a failing AbortMultipartUpload never hides the original error', () => {
    it('abort fails twice (absorbed by the SDK retries): still 502 with the UploadPart error, upload gone', async () => {
      const { url, logs } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([
        { match: isOp('UploadPart'), action: '503-slowdown' },
        { match: isOp('AbortMultipartUpload'), times: 2, action: '500' },
      ]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 7);
      expect(res.status).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(json.error?.message).toMatch(/SlowDown/);
      expect(json.error?.message).not.toMatch(/InternalError/);
      expect(proxy.count('AbortMultipartUpload', '500')).toBe(2);
      expect(proxy.count('AbortMultipartUpload', 'forward')).toBe(1);
      expect(logs.filter((l) => l.message === 'AbortMultipartUpload failed' && l.level === 'error')).toEqual([]);
      figures.persistent++;
      await expectNothingLeft(before);
    });

    it('abort fails past the SDK retries: the service retries it, logs a warning, keeps the original 502', async () => {
      const { url, logs } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([
        { match: isOp('UploadPart'), action: '503-slowdown' },
        // The SDK makes 3 attempts per call: 3 failures fail the service's first abort.
        { match: isOp('AbortMultipartUpload'), times: 3, action: '500' },
      ]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 8);
      expect(res.status).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(json.error?.message).toMatch(/\(503 SlowDown\)/);
      expect(json.error?.message).not.toMatch(/InternalError|Abort/);
      expect(proxy.count('AbortMultipartUpload', '500')).toBe(3);
      expect(proxy.count('AbortMultipartUpload', 'forward')).toBe(1);
      const warns = logs.filter((l) => l.message === 'AbortMultipartUpload failed');
      expect(warns).toHaveLength(1);
      expect(warns[0]).toMatchObject({ level: 'warn', attempt: 1, err: { name: 'InternalError', httpStatus: 500 } });
      expect(warns[0]!.uploadId).toEqual(expect.any(String));
      figures.persistent++;
      await expectNothingLeft(before);
    });

    it('abort failing every time: logged as an error with the upload id, response still 502 STORAGE_FAILED', async () => {
      const { url, logs } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([
        { match: isOp('UploadPart'), action: '500' },
        { match: isOp('AbortMultipartUpload'), action: '503-slowdown' },
      ]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 9);
      expect(res.status).toBe(502);
      expect(json.error?.code).toBe('STORAGE_FAILED');
      expect(json.error?.message).toMatch(/\(500 InternalError\)/);
      expect(json.error?.message).not.toMatch(/SlowDown/);
      expect(proxy.count('AbortMultipartUpload', 'forward')).toBe(0);
      // Retried (SDK attempts with throttling back-off, then ours) within the 2 s clean-up budget.
      expect(proxy.count('AbortMultipartUpload', '503-slowdown')).toBeGreaterThanOrEqual(2);
      const failures = logs.filter((l) => l.message === 'AbortMultipartUpload failed');
      const last = failures.at(-1)!;
      expect(last.level).toBe('error');
      expect(failures.slice(0, -1).every((l) => l.level === 'warn')).toBe(true);
      // The one upload the service could not abort is exactly the one it logged: the
      // bucket's AbortIncompleteMultipartUpload lifecycle rule is the safety net for it.
      const open = await listOpenUploads(direct, bucket);
      expect(open.map((u) => u.uploadId)).toEqual([last.uploadId]);
      proxy.setRules([]);
      await destroyOpenUploads();
      figures.persistent++;
      await expectNothingLeft(before);
    });
  });

  describe('lost responses of calls that did take effect', () => {
    it('lost AbortMultipartUpload response: the retry finds NoSuchUpload, 502 with the original error', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([
        { match: isOp('UploadPart'), action: '500' },
        { match: isOp('AbortMultipartUpload'), times: 1, action: 'drop-response' },
      ]);
      proxy.clearLog();
      const { res, json } = await upload(url, SIZE, 10);
      expect(res.status).toBe(502);
      expect(json.error?.message).toMatch(/\(500 InternalError\)/);
      expect(proxy.count('AbortMultipartUpload')).toBeGreaterThanOrEqual(2);
      figures.persistent++;
      await expectNothingLeft(before);
    });

    it('lost CompleteMultipartUpload response: whatever the answer, it matches what S3 holds', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match: isOp('CompleteMultipartUpload'), times: 1, action: 'drop-response' }]);
      proxy.clearLog();
      const { res, json, sha256 } = await upload(url, SIZE, 11);
      const after = await listKeys(direct, bucket);
      console.log(`[faults] lost CompleteMultipartUpload response -> ${res.status}`);
      expect(await listOpenUploads(direct, bucket)).toEqual([]);
      if (res.status === 201) {
        // Reported stored: it must be there, byte-exact.
        const back = await readBack(direct, bucket, json.files![0]!.key);
        expect(back.sha256).toBe(sha256[0]);
        figures.survived++;
        await deleteKeys(direct, bucket, [json.files![0]!.key]);
      } else {
        // Reported failed: nothing may be left behind.
        expect(res.status).toBe(502);
        const orphans = after.filter((k) => !before.includes(k));
        await deleteKeys(direct, bucket, orphans);
        expect(orphans, 'objects stored by a request answered 502').toEqual([]);
      }
    });
  });

  describe('S3 stalls while the client goes away', () => {
    /**
     * Streams a file and destroys the request once the proxy holds `stalls` stalled
     * UploadParts. Resolves with the bytes the client had written by then.
     */
    async function uploadUntilStalled(url: string, size: number, stalls: number, seed: number): Promise<number> {
      const body = streamMultipart([{ name: 'file', filename: 'stall.bin', size, seed }]);
      const req = request(`${url}/uploads`, { method: 'POST', headers: { 'content-type': CONTENT_TYPE } });
      req.on('error', () => {});
      let sent = 0;
      body.stream.on('data', (chunk: Buffer) => (sent += chunk.length));
      body.stream.pipe(req);
      await pollUntil(
        async () => proxy.count('UploadPart', 'stall'),
        (n) => n >= stalls,
        { timeoutMs: 15_000, intervalMs: 20 },
      );
      expect(proxy.count('UploadPart', 'stall')).toBe(stalls);
      // Let backpressure settle: the client is held back by the stalled parts.
      await new Promise((r) => setTimeout(r, 300));
      body.stream.unpipe(req);
      body.stream.destroy();
      req.destroy();
      return sent;
    }

    const QUEUE = 4;
    const BIG = 40 * MiB;

    // While S3 stalls, backpressure has paused the client socket, so Node cannot see the
    // client go (a paused socket is not read, its FIN/RST goes unnoticed). The idle timeout
    // (UPLOAD_IDLE_TIMEOUT_MS) bounds that: the silent connection is closed, the request
    // fails, and UploadParts in flight are cut at once (they used to run until the SDK's 60 s
    // request timeout).
    it('the upload is aborted within 10 s of a mid-body disconnect, even with UploadParts stalled', async () => {
      const { url } = await startService({ UPLOAD_IDLE_TIMEOUT_MS: '3000' });
      proxy.setRules([{ match: isOp('UploadPart'), times: QUEUE, action: 'stall' }]);
      proxy.clearLog();
      try {
        const sent = await uploadUntilStalled(url, BIG, QUEUE, 12);
        expect(sent).toBeLessThan(BIG);
        const open = await pollUntil(
          () => listOpenUploads(direct, bucket),
          (u) => u.length === 0,
          { timeoutMs: 10_000, intervalMs: 250 },
        );
        expect(open).toEqual([]);
      } finally {
        // Let the stalled requests fail so the server can finish its clean-up.
        proxy.releaseStalled();
        await pollUntil(
          () => listOpenUploads(direct, bucket),
          (u) => u.length === 0,
          { timeoutMs: 15_000, intervalMs: 250 },
        );
      }
    }, 45_000);

    it('mid-body disconnect with UploadParts stalled: once the stalled connections drop, aborted, nothing left', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match: isOp('UploadPart'), times: QUEUE, action: 'stall' }]);
      proxy.clearLog();
      const sent = await uploadUntilStalled(url, BIG, QUEUE, 13);
      // The client really was cut off mid-body (held back by the stalled parts).
      expect(sent).toBeLessThan(BIG);
      expect(proxy.releaseStalled()).toBe(QUEUE);
      const t0 = performance.now();
      const open = await pollUntil(
        () => listOpenUploads(direct, bucket),
        (u) => u.length === 0,
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      console.log(
        `[faults] client cut at ${(sent / MiB).toFixed(1)} of ${BIG / MiB} MiB with ${QUEUE} UploadParts stalled; ` +
          `aborted ${Math.round(performance.now() - t0)} ms after the stalls were released`,
      );
      expect(open).toEqual([]);
      expect(proxy.count('AbortMultipartUpload', 'forward')).toBeGreaterThanOrEqual(1);
      expect(proxy.count('CompleteMultipartUpload')).toBe(0);
      figures.persistent++;
      await expectNothingLeft(before);
      const ok = await upload(url, 1000, 14);
      expect(ok.res.status).toBe(201);
      await deleteKeys(direct, bucket, [ok.json.files![0]!.key]);
    }, 45_000);

    it('disconnect after the whole body arrived, UploadPart stalled: the object is not left behind', async () => {
      const { url } = await startService();
      const before = await listKeys(direct, bucket);
      proxy.setRules([{ match: isOp('UploadPart'), times: 1, action: 'stall' }]);
      proxy.clearLog();
      // SIZE fits in the parts lib-storage holds in flight: the client sends all of it.
      const sent = await uploadUntilStalled(url, SIZE, 1, 15);
      expect(proxy.releaseStalled()).toBe(1);
      const left = await pollUntil(
        async () => ({ open: await listOpenUploads(direct, bucket), keys: await listKeys(direct, bucket) }),
        (x) => x.open.length === 0 && x.keys.length === before.length,
        { timeoutMs: 15_000, intervalMs: 100 },
      );
      const ops = proxy.requests.map((r) => r.op);
      console.log(
        `[faults] client gone after ${sent} of ~${SIZE} bytes, one UploadPart stalled then released: ` +
          `${ops.filter((o) => /Complete|Abort|DeleteObject/.test(o)).join(', ')}`,
      );
      figures.persistent++;
      expect(left.open).toEqual([]);
      expect(left.keys).toEqual(before);
      // The upload was either aborted, or completed and then deleted by the core.
      expect(ops.includes('AbortMultipartUpload') || ops.includes('DeleteObject')).toBe(true);
    }, 45_000);
  });

  async function destroyOpenUploads(): Promise<void> {
    for (const u of await listOpenUploads(direct, bucket)) {
      await direct.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId }));
    }
  }
});
