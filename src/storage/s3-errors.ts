/**
 * The one seam to AWS SDK errors: anything the S3 client throws becomes an UploadError here,
 * matched on `name` and HTTP status, never on message text. Both the part uploader and the
 * session store translate through these functions.
 */
import { UploadError } from '../core/errors.ts';

interface SdkErrorLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
}

const nameOf = (err: unknown): string | undefined => {
  const name = (err as SdkErrorLike | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
};
const statusOf = (err: unknown): number | undefined => (err as SdkErrorLike | undefined)?.$metadata?.httpStatusCode;

/** STORAGE_FAILED naming the action, the status and the error name (an UploadError passes through). */
export function storageError(err: unknown, action: string): UploadError {
  if (err instanceof UploadError) return err;
  const status = statusOf(err);
  const name = nameOf(err) !== 'Error' ? nameOf(err) : undefined;
  const detail = [status, name].filter((x) => x !== undefined).join(' ');
  return new UploadError('STORAGE_FAILED', `The object store failed to ${action}${detail ? ` (${detail})` : ''}`, {
    cause: err,
  });
}

/** True for errors that mean "already gone" on delete/abort: nothing left to clean up. */
export function isNotFound(err: unknown): boolean {
  const name = nameOf(err);
  return name === 'NoSuchUpload' || name === 'NoSuchKey' || name === 'NotFound' || statusOf(err) === 404;
}

/** True when the store does not implement ListParts (s3rver answers 405 MethodNotAllowed). */
export function isNotImplemented(err: unknown): boolean {
  const status = statusOf(err);
  return nameOf(err) === 'NotImplemented' || status === 501 || status === 405;
}

/**
 * True when a multipart upload is gone (completed or aborted): AWS says NoSuchUpload, radosgw
 * 16 answers ListParts with NoSuchKey.
 */
export function isUploadGone(err: unknown): boolean {
  const name = nameOf(err);
  return name === 'NoSuchUpload' || name === 'NoSuchKey';
}

/** The multipart upload does not exist (any more). */
export function isNoSuchUpload(err: unknown): boolean {
  return nameOf(err) === 'NoSuchUpload';
}

/** CompleteMultipartUpload refusing the part list it was given. */
export function isPartRefusal(err: unknown): string | undefined {
  const name = nameOf(err);
  return name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall' ? name : undefined;
}

/** A session whose multipart upload no longer exists. */
export function sessionGone(err: unknown): UploadError {
  return new UploadError('INVALID_SESSION', 'The upload session no longer exists (completed or aborted)', { cause: err });
}
