/**
 * One S3 round trip for a file of at most one part: the PutObject's answer confirms the bytes
 * (an echoed CRC32, or an ETag equal to the Content-MD5 sent), and only a store whose answer
 * confirms nothing gets a read-back (HeadObject). Checked on s3rver and radosgw (ETag = MD5)
 * and on a stand-in S3 over HTTP that echoes the CRC32 it computed (as AWS does), or answers
 * an opaque ETag and no checksum (as SSE-KMS objects do).
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { DeleteBucketCommand, DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ReadBack } from '../../src/storage/confirm-stored.ts';
import { createS3PartUploader } from '../../src/storage/s3-part-uploader.ts';
import { objectSha256 } from '../helpers/generated-file.ts';
import { generatedBytes } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, uniqueBucketName } from '../helpers/radosgw.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const PART = 5 * 1024 * 1024;
const SIZES = [0, 1, 64 * 1024, PART];

function recordingSink(client: S3Client, bucket: string, readBack: ReadBack = 'auto') {
  const sent: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push((context as { commandName: string }).commandName);
      return next(args);
    },
    { step: 'initialize', name: 'recordCommands' },
  );
  return { sent, sink: createS3PartUploader({ client, bucket, partBytes: PART, queueSize: 2, readBack }) };
}

function input(key: string, size: number, seed: number) {
  return {
    key,
    body: Readable.from(generatedBytes(size, seed, 65_536)),
    contentType: 'application/octet-stream',
    contentDisposition: 'attachment',
    metadata: {},
    signal: new AbortController().signal,
    maxBytes: size,
  };
}

const sha256Of = (size: number, seed: number) => {
  const h = createHash('sha256');
  for (const c of generatedBytes(size, seed, 65_536)) h.update(c);
  return h.digest('hex');
};

describe('on s3rver (ETag = MD5)', () => {
  let s3: TestS3rver;
  beforeAll(async () => {
    s3 = await startS3rver('single-rt');
  });
  afterAll(async () => {
    await s3?.close();
  });

  it.each(SIZES)('%i bytes: one PutObject, confirmed by its ETag', async (size) => {
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    const { sent, sink } = recordingSink(client, s3.bucket);
    const out = await sink.put(input(`rt/${size}`, size, 7));
    expect(sent).toEqual(['PutObjectCommand']);
    expect(out).toMatchObject({ storedSize: size, confirmedBy: 'etag' });
    expect(await objectSha256(client, s3.bucket, `rt/${size}`)).toEqual({ sha256: sha256Of(size, 7), size });
    client.destroy();
  });

  it('S3_READ_BACK=always reads the size back anyway', async () => {
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    const { sent, sink } = recordingSink(client, s3.bucket, 'always');
    const out = await sink.put(input('rt/always', 1000, 8));
    expect(sent).toEqual(['PutObjectCommand', 'HeadObjectCommand']);
    expect(out).toMatchObject({ storedSize: 1000, confirmedBy: 'read-back' });
    client.destroy();
  });
});

const endpoint = inject('radosgwEndpoint');

describe.skipIf(!endpoint)('on radosgw (ETag = MD5)', () => {
  let client: S3Client;
  let bucket: string;
  const keys: string[] = [];
  beforeAll(async () => {
    client = radosgwClient(endpoint);
    bucket = await createTestBucket(client, uniqueBucketName('single-rt'));
  });
  afterAll(async () => {
    if (!client) return;
    for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key })).catch(() => {});
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
    client.destroy();
  });

  it.each(SIZES)('%i bytes: one PutObject, confirmed by its ETag', async (size) => {
    const c = radosgwClient(endpoint);
    const { sent, sink } = recordingSink(c, bucket);
    const key = `rt/${size}`;
    keys.push(key);
    const out = await sink.put(input(key, size, 9));
    expect(sent).toEqual(['PutObjectCommand']);
    expect(out).toMatchObject({ storedSize: size, confirmedBy: 'etag' });
    expect(await objectSha256(c, bucket, key)).toEqual({ sha256: sha256Of(size, 9), size });
    c.destroy();
  });

  it('a multipart file without checksums to confirm its parts is read back once', async () => {
    const c = radosgwClient(endpoint);
    const { sent, sink } = recordingSink(c, bucket);
    const key = 'rt/multipart';
    keys.push(key);
    const out = await sink.put(input(key, PART + 1, 10));
    expect(sent.filter((n) => n === 'HeadObjectCommand')).toHaveLength(1);
    expect(out).toMatchObject({ storedSize: PART + 1, confirmedBy: 'read-back' });
    c.destroy();
  });
});

/**
 * A stand-in S3: PUT answers with the CRC32 it computed of the bytes it received (`echo`, as
 * AWS does for a request that carried one) or with an opaque ETag and no checksum (`opaque`);
 * HEAD answers the stored size. Counts requests by method.
 */
async function startStandIn(mode: 'echo' | 'opaque') {
  const seen: Record<string, number> = {};
  const sizes = new Map<string, number>();
  const partSizes: number[] = [];
  const server: Server = createServer((req, res) => {
    const method = req.method ?? '';
    seen[method] = (seen[method] ?? 0) + 1;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '/', 'http://x');
      if (method === 'POST' && url.searchParams.has('uploads')) {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(
          '<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>',
        );
        return;
      }
      if (method === 'POST' && url.searchParams.has('uploadId')) {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(
          '<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"m-2"</ETag></CompleteMultipartUploadResult>',
        );
        return;
      }
      if (method === 'PUT') {
        if (url.searchParams.has('partNumber')) partSizes.push(body.length);
        else sizes.set(url.pathname, body.length);
        const headers: Record<string, string> = { etag: '"opaque-kms-etag"' };
        if (mode === 'echo' && req.headers['x-amz-checksum-crc32']) {
          const crc = Buffer.alloc(4);
          crc.writeUInt32BE(crc32(body) >>> 0);
          headers['x-amz-checksum-crc32'] = crc.toString('base64');
        }
        res.writeHead(200, headers).end();
        return;
      }
      if (method === 'HEAD') {
        res.writeHead(200, { 'content-length': String(sizes.get(url.pathname) ?? 0), etag: '"x"' }).end();
        return;
      }
      res.writeHead(400).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    partSizes,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('on a stand-in S3 over HTTP', () => {
  const client = (endpoint: string, checksums: boolean) =>
    new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
      requestChecksumCalculation: checksums ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });

  it('a store that echoes the CRC32 it verified: one request', async () => {
    const standIn = await startStandIn('echo');
    const c = client(standIn.endpoint, true);
    const { sent, sink } = recordingSink(c, 'b');
    const out = await sink.put(input('k1', 64 * 1024, 11));
    expect(sent).toEqual(['PutObjectCommand']);
    expect(standIn.seen).toEqual({ PUT: 1 });
    expect(out).toMatchObject({ storedSize: 64 * 1024, confirmedBy: 'checksum' });
    c.destroy();
    await standIn.close();
  });

  // The CRC32 is kept up chunk by chunk as the bytes are copied into a part: chunks that
  // straddle part boundaries, and a bound below the file's size (its buffer then grows), must
  // still give the CRC32 of exactly the bytes each request carried.
  it.each([
    ['three parts, chunks across their boundaries', 2 * PART + 12_345, 2 * PART + 12_345, 65_540],
    ['one part, its buffer grown past a bound that was too small', 300_000, 1000, 4100],
  ])('a store that echoes the CRC32 of what it received, %s: confirmed by checksums', async (_, size, maxBytes, chunk) => {
    const standIn = await startStandIn('echo');
    const c = client(standIn.endpoint, true);
    const { sent, sink } = recordingSink(c, 'b');
    const out = await sink.put({ ...input('k4', size, 14), body: Readable.from(generatedBytes(size, 14, chunk)), maxBytes });
    const parts = Math.ceil(size / PART);
    expect(sent.filter((n) => n === 'HeadObjectCommand')).toEqual([]);
    expect(out).toMatchObject({ storedSize: size, confirmedBy: 'checksum' });
    expect(standIn.partSizes.reduce((a, b) => a + b, 0)).toBe(parts > 1 ? size : 0);
    c.destroy();
    await standIn.close();
  });

  it('a store that answers without a checksum (CRC32 sent): the size is read back', async () => {
    const standIn = await startStandIn('opaque');
    const c = client(standIn.endpoint, true);
    const { sink } = recordingSink(c, 'b');
    const out = await sink.put(input('k2', 64 * 1024, 12));
    expect(standIn.seen).toEqual({ PUT: 1, HEAD: 1 });
    expect(out).toMatchObject({ storedSize: 64 * 1024, confirmedBy: 'read-back' });
    c.destroy();
    await standIn.close();
  });

  it('a store whose ETag is not the MD5 sent (SSE-KMS): the size is read back', async () => {
    const standIn = await startStandIn('opaque');
    const c = client(standIn.endpoint, false);
    const { sink } = recordingSink(c, 'b');
    const out = await sink.put(input('k3', 1000, 13));
    expect(standIn.seen).toEqual({ PUT: 1, HEAD: 1 });
    expect(out).toMatchObject({ storedSize: 1000, confirmedBy: 'read-back' });
    c.destroy();
    await standIn.close();
  });
});
