/**
 * Looks into a real S3 server (radosgw) straight, not through the service: open multipart
 * uploads (the ones billed until aborted and invisible in normal listings), objects, their
 * bytes; and a bounded poll for server-side clean-up that finishes after the response.
 */
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface OpenUpload {
  key: string;
  uploadId: string;
}

/** Every open multipart upload in the bucket (ListMultipartUploads, all pages). */
export async function listOpenUploads(client: S3Client, bucket: string, prefix?: string): Promise<OpenUpload[]> {
  const out: OpenUpload[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker, UploadIdMarker }),
    );
    for (const u of page.Uploads ?? []) out.push({ key: u.Key!, uploadId: u.UploadId! });
    if (!page.IsTruncated) return out;
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
  }
}

/** Every object key in the bucket, sorted (ListObjectsV2, all pages). */
export async function listKeys(client: S3Client, bucket: string, prefix?: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  for (;;) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    if (!page.IsTruncated) return keys.sort();
    ContinuationToken = page.NextContinuationToken;
  }
}

export interface ReadBack {
  sha256: string;
  size: number;
  metadata: Record<string, string>;
  contentType: string | undefined;
  contentDisposition: string | undefined;
}

/** GetObject, hashed while it streams. */
export async function readBack(client: S3Client, bucket: string, key: string): Promise<ReadBack> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of out.Body as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return {
    sha256: hash.digest('hex'),
    size,
    metadata: out.Metadata ?? {},
    contentType: out.ContentType,
    contentDisposition: out.ContentDisposition,
  };
}

export async function deleteKeys(client: S3Client, bucket: string, keys: Iterable<string>): Promise<void> {
  for (const Key of keys) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
}

/**
 * Aborts every open upload, deletes every object, then the bucket (memstore keeps deleted
 * data until its GC runs, so tests delete what they wrote). Returns what it had to clean.
 */
export async function destroyBucket(client: S3Client, bucket: string): Promise<{ uploads: number; objects: number }> {
  const uploads = await listOpenUploads(client, bucket).catch(() => []);
  for (const u of uploads) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId })).catch(() => {});
  }
  const keys = await listKeys(client, bucket).catch(() => []);
  await deleteKeys(client, bucket, keys).catch(() => {});
  await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
  return { uploads: uploads.length, objects: keys.length };
}

/**
 * Polls `probe` until it returns true or `timeoutMs` passes; resolves with the last result
 * so the caller's assertion shows what was left.
 */
export async function pollUntil<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 10_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() >= deadline) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
