/**
 * The client library (src/client) against the Node server and a real radosgw: a 1 MiB file
 * through the stream-through lane and a 300 MiB file through the direct lane in one call,
 * both read back by SHA-256; an interrupted direct upload resumed by sending only the missing
 * parts; a cancel that aborts the session.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createUploadClient, UploadClientError, type FetchLike, type Progress } from '../../src/client/index.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { objectSha256, writeGeneratedFile } from '../helpers/generated-file.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const BIG = Number(process.env['CLIENT_TEST_BYTES'] ?? 300 * MiB);

describe.skipIf(!endpoint)('client library: Node server + radosgw', () => {
  let s3: S3Client;
  let bucket: string;
  let server: RunningServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'client-'));
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('client'));
    server = await startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        S3_PART_BYTES: String(8 * MiB),
        UPLOAD_SESSION_SECRET: 'client-test-secret-0123456789abcdef',
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );
  });

  afterAll(async () => {
    await server?.close();
    if (s3) {
      const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of objects.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
      s3.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const openUploads = async () =>
    ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key);

  it(`sends 1 MiB through POST /uploads and ${BIG / MiB} MiB straight to S3, byte for byte`, async () => {
    const small = join(dir, 'small file.txt');
    const big = join(dir, 'big.bin');
    const smallSha = await writeGeneratedFile(small, MiB, 1);
    const bigSha = await writeGeneratedFile(big, BIG, 2);
    const client = createUploadClient({ url: server.url });
    const seen: Progress[] = [];
    const started = performance.now();
    const files = await client.upload([small, { path: big, contentType: 'application/x-test' }], {
      onProgress: (p) => seen.push(p),
    });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `[client] ${(BIG + MiB) / MiB} MiB in ${seconds.toFixed(1)} s: ${((BIG + MiB) / MiB / seconds).toFixed(0)} MiB/s`,
    );

    expect(files.map((f) => [f.filename, f.size, f.lane, f.contentType])).toEqual([
      ['small file.txt', MiB, 'stream', 'text/plain'],
      ['big.bin', BIG, 'direct', 'application/x-test'],
    ]);
    // The stream lane's SHA-256 is computed by the server; the direct lane's is the one the client declared.
    expect(files.map((f) => f.sha256)).toEqual([smallSha, bigSha]);
    expect(await objectSha256(s3, bucket, files[0]!.key)).toEqual({ sha256: smallSha, size: MiB });
    expect(await objectSha256(s3, bucket, files[1]!.key)).toEqual({ sha256: bigSha, size: BIG });
    const last = seen.at(-1)!;
    expect([last.totalBytes, last.totalSize]).toEqual([BIG + MiB, BIG + MiB]);
    expect(seen.filter((p) => p.lane === 'direct').length).toBeGreaterThan(BIG / (256 * 1024) / 2);
    expect(await openUploads()).toEqual([]);
    // Keep radosgw's memstore small.
    for (const f of files) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: f.key }));
  });

  it('resumes an interrupted direct upload, sending only the missing parts', async () => {
    const size = 8 * 8 * MiB + 123; // 9 parts of 8 MiB
    const path = join(dir, 'resume.bin');
    const sha = await writeGeneratedFile(path, size, 3);
    // The network to S3 "breaks" after 4 parts went through.
    let okPuts = 0;
    const flaky: FetchLike = async (url, init) => {
      if (init?.method === 'PUT') {
        if (okPuts >= 4) throw new TypeError('fetch failed', { cause: new Error('ECONNRESET') });
        okPuts++;
      }
      return fetch(url, init);
    };
    const first = createUploadClient({ url: server.url, fetch: flaky, retries: 1, retryBaseMs: 10, partConcurrency: 2 });
    const failure = await first.upload([path], { resumable: true }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(UploadClientError);
    const error = failure as UploadClientError;
    expect([error.code, error.kind]).toEqual(['NETWORK', 'server']);
    expect(error.sessions).toHaveLength(1);
    const saved = JSON.parse(JSON.stringify(error.sessions)) as typeof error.sessions; // as if kept on disk
    // The 4 PUTs that got through finished; nothing after them was started.
    expect(saved[0]!.parts).toHaveLength(4);
    expect(await openUploads()).toEqual([saved[0]!.key]);

    const puts: number[] = [];
    const second = createUploadClient({ url: server.url });
    const [file] = await second.upload([path], { resume: saved, onPartPut: (n) => puts.push(n) });
    const done = new Set(saved[0]!.parts.map((p) => p.partNumber));
    expect(puts.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].filter((n) => !done.has(n)));
    expect(file).toMatchObject({ key: saved[0]!.key, size, sha256: sha, lane: 'direct' });
    expect(await objectSha256(s3, bucket, file!.key)).toEqual({ sha256: sha, size });
    expect(await openUploads()).toEqual([]);
  });

  it('a session the service no longer knows is started afresh', async () => {
    const size = 5 * MiB;
    const path = join(dir, 'stale.bin');
    const sha = await writeGeneratedFile(path, size, 4);
    const client = createUploadClient({ url: server.url });
    const { mtimeMs } = await import('node:fs/promises').then((fs) => fs.stat(path));
    const stale = {
      sessionId: 'forged.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      path,
      size,
      mtimeMs,
      key: 'uploads/x',
      partSize: 8 * MiB,
      partCount: 1,
      expiresAt: new Date(Date.now() + 3600_000).toISOString(),
      parts: [],
    };
    const [file] = await client.upload([path], { resume: [stale], onPartPut: () => {} });
    expect(file!.sha256).toBe(sha);
    expect(await objectSha256(s3, bucket, file!.key)).toEqual({ sha256: sha, size });
  });

  it('cancelling aborts the session: no multipart upload is left open', async () => {
    const path = join(dir, 'cancel.bin');
    await writeGeneratedFile(path, 40 * MiB, 5);
    const controller = new AbortController();
    const client = createUploadClient({ url: server.url, partConcurrency: 2 });
    let sessionKey = '';
    const outcome = await client
      .upload([path], {
        signal: controller.signal,
        onSession: (s) => {
          sessionKey = s.key;
          if (s.parts.length === 1) controller.abort();
        },
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(outcome).toBeInstanceOf(UploadClientError);
    expect([(outcome as UploadClientError).code, (outcome as UploadClientError).kind]).toEqual(['ABORTED', 'aborted']);
    expect(sessionKey).not.toBe('');
    expect(await openUploads()).not.toContain(sessionKey);
    const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: sessionKey }));
    expect(objects.Contents ?? []).toEqual([]);
  });

  it('reports a refusal of the service with its code', async () => {
    const path = join(dir, 'refused.bin');
    await writeGeneratedFile(path, 6 * MiB, 6);
    const client = createUploadClient({ url: server.url, token: 'x'.repeat(20) });
    // A 4xx from the service: the session route refuses a content type it cannot parse.
    const err = await client.upload([{ path, contentType: 'not a type' }]).then(
      () => undefined,
      (e: unknown) => e as UploadClientError,
    );
    expect([err?.code, err?.status, err?.kind]).toEqual(['BAD_REQUEST', 400, 'client']);
    await expect(client.upload([join(dir, 'missing.bin')])).rejects.toMatchObject({ code: 'FILE_ERROR', kind: 'client' });
  });
});
