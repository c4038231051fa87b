// Proves the S3 server from test/helpers/ceph-global-setup.ts is a real one: multipart listing
// and abort are things s3rver does not implement.
import {
  AbortMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestBucket, radosgwClient, uniqueBucketName } from '../helpers/radosgw.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;

describe.skipIf(!endpoint)('radosgw smoke', () => {
  let client: S3Client;
  let bucket: string;

  beforeAll(async () => {
    client = radosgwClient(endpoint);
    bucket = await createTestBucket(client, uniqueBucketName('smoke'));
  });

  afterAll(async () => {
    if (!client) return;
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'small.bin' })).catch(() => {});
    await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
    client.destroy();
  });

  it('lists and aborts a multipart upload', async () => {
    const Key = 'multipart/aborted.bin';
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
    expect(UploadId).toBeTruthy();

    const sizes = [5 * MiB, 1];
    for (const [i, size] of sizes.entries()) {
      const res = await client.send(
        new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: i + 1, Body: Buffer.alloc(size, i + 1) }),
      );
      expect(res.ETag).toMatch(/^"[0-9a-f]{32}"$/);
    }

    const parts = await client.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, 5 * MiB],
      [2, 1],
    ]);

    const before = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: Key }));
    expect(before.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([[Key, UploadId]]);

    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));

    const after = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: Key }));
    expect(after.Uploads ?? []).toEqual([]);
    // radosgw returns empty error messages: match on name and HTTP status. (ListParts on an
    // aborted upload answers NoSuchKey there, not NoSuchUpload; UploadPart matches AWS.)
    await expect(
      client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: 3, Body: Buffer.alloc(1) })),
    ).rejects.toMatchObject({ name: 'NoSuchUpload', $metadata: { httpStatusCode: 404 } });
  });

  it('puts an object and heads its size', async () => {
    const body = Buffer.alloc(123_457, 7);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'small.bin', Body: body }));
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small.bin' }));
    expect(head.ContentLength).toBe(body.length);
  });
});
