/**
 * The ObjectSink port's contract, run against every implementation (as tus runs its store
 * tests against every store): the in-memory sink the core's unit tests use, and the S3 sink
 * on s3rver and on radosgw. What the core relies on: a file is stored byte-exact with its
 * type, disposition and metadata; a body that fails or a request that is aborted stores
 * nothing and leaves no multipart upload open; delete removes what put stored.
 */
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { UploadError } from '../../src/core/errors.ts';
import type { ObjectSink } from '../../src/core/sink.ts';
import { createLogger } from '../../src/logger.ts';
import { createS3UploadDeps } from '../../src/wiring.ts';
import { MemorySink } from '../helpers/memory-sink.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { destroyBucket, listOpenUploads, readBack } from '../helpers/s3-inspect.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
const PART = 5 * MiB;
const endpoint = inject('radosgwEndpoint');

interface Stored {
  sha256: string;
  size: number;
  contentType: string | undefined;
  contentDisposition: string | undefined;
  metadata: Record<string, string>;
}

interface Harness {
  sink: ObjectSink;
  /** What the store holds under `key`, or undefined. */
  read(key: string): Promise<Stored | undefined>;
  /** Keys of multipart uploads still open (undefined where the store cannot list them). */
  openUploads(): Promise<string[] | undefined>;
  close(): Promise<void>;
}

function memoryHarness(): Harness {
  const sink = new MemorySink();
  return {
    sink,
    async read(key) {
      const o = sink.objects.get(key);
      if (!o) return undefined;
      return {
        sha256: createHash('sha256').update(o.data).digest('hex'),
        size: o.data.length,
        contentType: o.contentType,
        contentDisposition: o.contentDisposition,
        metadata: o.metadata,
      };
    },
    openUploads: async () => [],
    close: async () => {},
  };
}

function s3Harness(
  client: S3Client,
  bucket: string,
  s3Endpoint: string,
  credentials: { accessKeyId: string; secretAccessKey: string },
  listsUploads: boolean,
  close: () => Promise<void>,
): Harness {
  const config = loadConfig({ UPLOAD_BUCKET: bucket, S3_ENDPOINT: s3Endpoint, S3_PART_BYTES: String(PART) });
  const { upload, client: sinkClient } = createS3UploadDeps(config, createLogger('silent'), { credentials });
  return {
    sink: upload.sink,
    async read(key) {
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        const body = await readBack(client, bucket, key);
        return {
          sha256: body.sha256,
          size: body.size,
          contentType: head.ContentType,
          contentDisposition: head.ContentDisposition,
          metadata: head.Metadata ?? {},
        };
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
        throw err;
      }
    },
    openUploads: async () => (listsUploads ? (await listOpenUploads(client, bucket)).map((u) => u.key) : undefined),
    async close() {
      sinkClient.destroy();
      await close();
    },
  };
}

const harnesses: Record<string, () => Promise<Harness>> = {
  'in-memory sink': async () => memoryHarness(),
  'S3 sink on s3rver': async () => {
    const s3: TestS3rver = await startS3rver();
    return s3Harness(s3.client, s3.bucket, s3.endpoint, S3RVER_CREDENTIALS, false, () => s3.close());
  },
};
if (endpoint) {
  harnesses['S3 sink on radosgw'] = async () => {
    const client = radosgwClient(endpoint);
    const bucket = await createTestBucket(client, uniqueBucketName('sink'));
    const credentials = { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY };
    return s3Harness(client, bucket, endpoint, credentials, true, async () => {
      await destroyBucket(client, bucket);
      client.destroy();
    });
  };
}

function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.each(Object.keys(harnesses))('ObjectSink contract: %s', (name) => {
  let h: Harness;
  beforeAll(async () => {
    h = await harnesses[name]!();
  });
  afterAll(async () => {
    await h?.close();
  });

  const put = (key: string, body: Readable, signal = new AbortController().signal) =>
    h.sink.put({
      key,
      body,
      contentType: 'text/csv',
      contentDisposition: `attachment; filename="${key}"`,
      metadata: { 'uploaded-by': 'token%3Abilling', 'original-filename': 'r%C3%A9sum%C3%A9.csv' },
      signal,
    });

  it.each([
    ['empty', 0],
    ['one byte', 1],
    ['exactly one part', PART],
    ['one part and a byte', PART + 1],
    ['three parts and a bit', 3 * PART + 12_345],
  ])('stores a file %s byte-exact, with its type, disposition and metadata', async (_label, size) => {
    const key = `contract/${name.replace(/\W+/g, '-')}/${size}.csv`;
    const data = bytes(size, size % 251);
    const out = await put(key, Readable.from(size ? [data.subarray(0, size >> 1), data.subarray(size >> 1)] : []));
    expect(typeof out.etag).toBe('string');
    if (out.storedSize !== undefined) expect(out.storedSize).toBe(size);
    expect(await h.read(key)).toEqual({
      sha256: sha(data),
      size,
      contentType: 'text/csv',
      contentDisposition: `attachment; filename="${key}"`,
      metadata: { 'uploaded-by': 'token%3Abilling', 'original-filename': 'r%C3%A9sum%C3%A9.csv' },
    });
    await h.sink.delete(key);
    expect(await h.read(key)).toBeUndefined();
  });

  it.each([
    ['before the first part is full', MiB],
    ['after two parts', 2 * PART + MiB],
  ])('a body that fails %s: put rejects, nothing stored, no upload open', async (_label, sent) => {
    const key = `contract/${name.replace(/\W+/g, '-')}/broken-${sent}.bin`;
    const body = new PassThrough();
    const pending = put(key, body);
    body.write(bytes(sent, 3));
    setTimeout(() => body.destroy(new UploadError('FILE_TOO_LARGE', 'cut by the test')), 50);
    await expect(pending).rejects.toBeInstanceOf(UploadError);
    expect(await h.read(key)).toBeUndefined();
    const open = await h.openUploads();
    if (open) expect(open.filter((k) => k === key)).toEqual([]);
  });

  it('an aborted request: put settles rejected, nothing stored, no upload open', async () => {
    const key = `contract/${name.replace(/\W+/g, '-')}/aborted.bin`;
    const controller = new AbortController();
    const body = new PassThrough();
    const pending = put(key, body, controller.signal);
    body.write(bytes(PART + MiB, 5));
    setTimeout(() => controller.abort(new UploadError('CLIENT_CLOSED_REQUEST', 'gone')), 50);
    await expect(pending).rejects.toBeInstanceOf(UploadError);
    body.destroy();
    expect(await h.read(key)).toBeUndefined();
    const open = await h.openUploads();
    if (open) expect(open.filter((k) => k === key)).toEqual([]);
  });
});
