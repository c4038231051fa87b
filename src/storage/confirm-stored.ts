import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { CoreLogger } from '../core/upload-files.ts';
import { storageError } from './s3-errors.ts';

/**
 * Reads a just-stored object's size back (HeadObject) so the core can compare it with the
 * bytes it counted: it catches a store that kept something else than what was sent (e.g.
 * aws-chunked framing). When the check cannot run the object is removed, so a file is never
 * left behind unreported.
 */
export async function confirmStored(options: {
  client: S3Client;
  bucket: string;
  key: string;
  versionId: string | undefined;
  signal: AbortSignal;
  remove: (key: string, versionId?: string) => Promise<void>;
  logger: CoreLogger | undefined;
}): Promise<number | undefined> {
  const { client, bucket, key, versionId } = options;
  try {
    const head = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
      {
        abortSignal: options.signal,
      },
    );
    return head.ContentLength;
  } catch (err) {
    await options
      .remove(key, versionId)
      .catch((e: unknown) => options.logger?.error('DeleteObject after a failed HeadObject failed', { key, err: e }));
    throw storageError(err, 'confirm the stored file');
  }
}
