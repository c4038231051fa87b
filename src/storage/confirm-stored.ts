import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { PutObjectOutput } from '../core/sink.ts';
import type { CoreLogger } from '../core/upload-files.ts';
import { storageError } from './s3-errors.ts';

/** What S3 answered to PutObject or CompleteMultipartUpload (the fields used here). */
export interface StoreAnswer {
  ETag?: string | undefined;
  VersionId?: string | undefined;
  ChecksumCRC32?: string | undefined;
}

/**
 * Turns S3's answer into the sink's output after reading the object's size back (HeadObject),
 * so the core can compare it with the bytes it counted: it catches a store that kept
 * something else than what was sent (e.g. aws-chunked framing). When the check cannot run
 * the object is removed, so a file is never left behind unreported.
 */
export async function confirmStored(
  answer: StoreAnswer,
  options: {
    client: S3Client;
    bucket: string;
    key: string;
    /** Cuts the HeadObject (a deadline). */
    signal: AbortSignal;
    remove: (key: string, versionId?: string) => Promise<void>;
    logger: CoreLogger | undefined;
  },
): Promise<PutObjectOutput> {
  const { client, bucket, key } = options;
  const versionId = answer.VersionId;
  let storedSize: number | undefined;
  try {
    const head = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
      {
        abortSignal: options.signal,
      },
    );
    storedSize = head.ContentLength;
  } catch (err) {
    await options
      .remove(key, versionId)
      .catch((e: unknown) => options.logger?.error('DeleteObject after a failed HeadObject failed', { key, err: e }));
    throw storageError(err, 'confirm the stored file');
  }
  return {
    etag: answer.ETag ?? '',
    ...(versionId ? { versionId } : {}),
    ...(storedSize !== undefined ? { storedSize } : {}),
    ...(answer.ChecksumCRC32 ? { checksumCRC32: answer.ChecksumCRC32 } : {}),
  };
}
