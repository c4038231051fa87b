/**
 * Clean-up calls of the S3 sink. The abort is ours: awaited (the
 * Lambda runtime does not wait for stray promises), retried, logged, and never allowed to
 * replace the error that caused it. Both calls run within a time budget so a stalled S3
 * cannot hold a request past its deadline; the bucket's lifecycle rule is the safety net.
 */
import { AbortMultipartUploadCommand, DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { CoreLogger } from '../core/logger.ts';
import { sendS3 } from './s3-call.ts';
import { isNotFound, storageError } from './s3-errors.ts';

export interface S3Cleanup {
  /** AbortMultipartUpload with `attempts` tries on top of the SDK's own retries, until `deadline`. */
  abortMultipart(key: string, uploadId: string, cause: unknown, deadline: AbortSignal): Promise<void>;
  /** DeleteObject (a missing object is fine), until `deadline` (default: the clean-up budget). */
  removeObject(key: string, versionId?: string, deadline?: AbortSignal): Promise<void>;
  /**
   * Undoes a failed put within one clean-up budget: aborts its multipart upload (when one was
   * created) and, when a PutObject or CompleteMultipartUpload was cut off in flight and may
   * still have landed, deletes the key (this file's alone, so only our own object). Never throws.
   */
  undoFailedPut(key: string, uploadId: string | undefined, cause: unknown, mayHaveLanded: boolean): Promise<void>;
}

export function createS3Cleanup(options: {
  client: S3Client;
  bucket: string;
  logger: CoreLogger | undefined;
  abortAttempts: number;
  cleanupTimeoutMs: number;
}): S3Cleanup {
  const { client, bucket, logger, abortAttempts, cleanupTimeoutMs } = options;
  const cleanup: S3Cleanup = {
    async abortMultipart(key, uploadId, cause, deadline) {
      for (let attempt = 1; ; attempt++) {
        try {
          await sendS3(
            client,
            new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }),
            { signal: deadline },
            (c, o) => client.send(c, o),
          );
          return;
        } catch (err) {
          if (isNotFound(err)) return;
          const last = attempt >= abortAttempts || deadline.aborted;
          (last ? logger?.error : logger?.warn)?.call(logger, 'AbortMultipartUpload failed', {
            key,
            uploadId,
            attempt,
            err,
            cause,
          });
          if (last) return;
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    },
    async removeObject(key, versionId, deadline = AbortSignal.timeout(cleanupTimeoutMs)) {
      try {
        await sendS3(
          client,
          new DeleteObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
          { signal: deadline },
          (c, o) => client.send(c, o),
        );
      } catch (err) {
        if (isNotFound(err)) return;
        throw storageError(err, 'delete the file');
      }
    },
    async undoFailedPut(key, uploadId, cause, mayHaveLanded) {
      const deadline = AbortSignal.timeout(cleanupTimeoutMs);
      if (uploadId) await cleanup.abortMultipart(key, uploadId, cause, deadline);
      if (mayHaveLanded) {
        await cleanup
          .removeObject(key, undefined, deadline)
          .catch((err: unknown) => logger?.warn('DeleteObject after abort failed', { key, err }));
      }
    },
  };
  return cleanup;
}
