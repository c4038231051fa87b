/**
 * Load: 50 concurrent uploads of mixed sizes (1 B to 64 MiB, 650 MiB in all) through the
 * server (its bundle, child process) into Ceph radosgw. Every object must be byte-exact and
 * the server's peak RSS must stay within its memory budget plus its warmed-up baseline, so
 * memory is fixed whatever the concurrency: files past the budget wait for their turn.
 */
import { createHash } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { post } from '../helpers/http.ts';
import { CONTENT_TYPE, streamMultipart } from '../helpers/multipart.ts';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';

const MiB = 1024 * 1024;
const endpoint = inject('radosgwEndpoint');
const BUDGET = 40 * MiB;
/** V8 frees dead Buffers only after external memory grew by its 64 MiB soft limit. */
const GC_SLACK = 64 * MiB;
/** A request waiting for memory holds its socket read and stream high-water marks (see memory.test.ts). */
const PER_CONNECTION = 512 * 1024;

const SIZES = [
  1,
  7,
  1024,
  65_536,
  ...Array<number>(10).fill(MiB),
  ...Array<number>(10).fill(5 * MiB),
  ...Array<number>(10).fill(8 * MiB + 1),
  ...Array<number>(8).fill(16 * MiB),
  ...Array<number>(4).fill(32 * MiB),
  ...Array<number>(4).fill(64 * MiB),
];

let server: ServerProcess;
let s3: S3Client;
let bucket: string;

describe.skipIf(!endpoint)('load: 50 concurrent uploads into radosgw', () => {
  beforeAll(async () => {
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('load'));
    server = await startServerProcess({
      env: {
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        AWS_ACCESS_KEY_ID: RADOSGW_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: RADOSGW_SECRET_KEY,
        UPLOAD_MEMORY_BYTES: String(BUDGET),
        UPLOAD_MEMORY_QUEUE: '100',
        LOG_LEVEL: 'warn',
      },
    });
  });

  afterAll(async () => {
    server?.stop();
    s3?.destroy();
  });

  it('stores every file byte-exact with peak RSS within budget + baseline', async () => {
    const warm = streamMultipart([{ name: 'f', filename: 'warm.bin', size: 17 * MiB, seed: 1 }]);
    const warmRes = await post(`${server.url}/uploads`, warm.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(warmRes.status).toBe(201);
    const warmKey = (warmRes.json as { files: Array<{ key: string }> }).files[0]!.key;
    const baselineKiB = await server.statusKiB('VmRSS');

    const t0 = performance.now();
    const results = await Promise.all(
      SIZES.map(async (size, i) => {
        const body = streamMultipart([{ name: 'f', filename: `f${i}.bin`, size, seed: 100 + i }]);
        const res = await post(`${server.url}/uploads`, body.stream, {
          headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length },
        });
        return { size, res, sha: body.sha256 };
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const peakKiB = await server.statusKiB('VmHWM');
    const total = SIZES.reduce((a, b) => a + b, 0);

    const keys = [warmKey];
    for (const { size, res, sha } of results) {
      expect(res.status).toBe(201);
      const file = (res.json as { files: Array<{ key: string; size: number; sha256: string }> }).files[0]!;
      expect(file.size).toBe(size);
      expect(file.sha256).toBe(''); // default UPLOAD_SHA256=requested: the read-back below checks the bytes
      keys.push(file.key);
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: file.key }));
      const hash = createHash('sha256');
      for await (const chunk of out.Body as AsyncIterable<Buffer>) hash.update(chunk);
      expect(hash.digest('hex')).toBe(sha[0]);
    }
    const open = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    expect(open.Uploads ?? []).toEqual([]);

    const boundKiB = baselineKiB + (BUDGET + GC_SLACK + SIZES.length * PER_CONNECTION) / 1024;
    console.log(
      `[load] ${SIZES.length} concurrent uploads, ${(total / MiB).toFixed(0)} MiB in ${seconds.toFixed(1)} s ` +
        `(${(total / MiB / seconds).toFixed(0)} MiB/s into radosgw); server baseline ${(baselineKiB / 1024).toFixed(0)} MiB, ` +
        `peak ${(peakKiB / 1024).toFixed(0)} MiB, bound ${(boundKiB / 1024).toFixed(0)} MiB (budget ${BUDGET / MiB} MiB)`,
    );
    expect(peakKiB).toBeLessThan(boundKiB);

    // radosgw keeps memstore data in RAM: give it back.
    await Promise.all(keys.map((Key) => s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }))));
  }, 240_000);
});
