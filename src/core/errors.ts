import { ERROR_STATUS, type ErrorCode, type ErrorPayload } from '../protocol.ts';

/**
 * The one error type of the service. `code` is stable and maps to `status` through
 * {@link ERROR_STATUS}; `expose` (status below 500, as in middy/http-errors) says whether
 * the message may be shown to the caller. The original error is kept in `cause`.
 */
export class UploadError extends Error {
  override readonly name = 'UploadError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.expose =
      this.status < 500 || code === 'STORAGE_FAILED' || code === 'TIMEOUT' || code === 'BUSY' || code === 'SHUTTING_DOWN';
  }
}

/** Anything thrown becomes an UploadError; unknown errors become a generic 500 INTERNAL. */
export function toUploadError(err: unknown): UploadError {
  if (err instanceof UploadError) return err;
  return new UploadError('INTERNAL', 'Internal error', { cause: err });
}

/** The caller-facing payload: a generic message for anything not exposed. */
export function errorPayload(err: UploadError): ErrorPayload {
  return { code: err.code, message: err.expose ? err.message : 'Internal error' };
}
