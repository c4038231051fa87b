/**
 * The one seam to AWS SDK errors: anything the S3 client or lib-storage throws becomes an
 * UploadError here, matched on `name` and HTTP status, never on message text.
 */
import { UploadError } from '../core/errors.ts';

interface SdkErrorLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

export function storageError(err: unknown, action: string): UploadError {
  if (err instanceof UploadError) return err;
  const e = (err ?? {}) as SdkErrorLike;
  const status = e.$metadata?.httpStatusCode;
  const name = typeof e.name === 'string' && e.name !== 'Error' ? e.name : undefined;
  const detail = [status, name].filter((x) => x !== undefined).join(' ');
  return new UploadError('STORAGE_FAILED', `The object store failed to ${action}${detail ? ` (${detail})` : ''}`, {
    cause: err,
  });
}

/** True for errors that mean "already gone" on delete/abort: nothing left to clean up. */
export function isNotFound(err: unknown): boolean {
  const e = (err ?? {}) as SdkErrorLike;
  return e.name === 'NoSuchUpload' || e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}
