import type { ErrorCode } from '../protocol.ts';
import type { SessionState } from './session-state.ts';

/** Codes of failures that happen on the client's side of the wire. */
export type ClientErrorCode =
  /** The caller's signal aborted the upload. */
  | 'ABORTED'
  /** The service or S3 could not be reached (connection refused, reset, DNS, ...). */
  | 'NETWORK'
  /** A file could not be read, or changed while it was being uploaded. */
  | 'FILE_ERROR'
  /** The service answered something that is not its protocol. */
  | 'BAD_RESPONSE'
  /** S3 refused a part PUT (status in `status`). */
  | 'PART_UPLOAD_FAILED'
  /** The client was given options it cannot work with (e.g. SigV4 for a host it cannot infer a region from). */
  | 'INVALID_OPTIONS';

/**
 * The one error the client throws. `code` is the service's error code when the service
 * answered with one, else a {@link ClientErrorCode}. `kind` says whose fault it was, which is
 * what the CLI's exit code reports.
 */
export class UploadClientError extends Error {
  override readonly name = 'UploadClientError';
  readonly code: ErrorCode | ClientErrorCode;
  /** HTTP status of the answer that failed the upload, when there was one. */
  readonly status: number | undefined;
  /**
   * Direct-lane sessions left open for a later `upload(files, { resume })` (only with
   * `resumable: true`, and only for failures that are worth resuming).
   */
  sessions: SessionState[] = [];

  constructor(code: ErrorCode | ClientErrorCode, message: string, options: { status?: number; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.status = options.status;
  }

  /** 'client': the request or the input was refused or unreadable; 'server': the service or S3 failed; 'aborted'. */
  get kind(): 'client' | 'server' | 'aborted' {
    if (this.code === 'ABORTED') return 'aborted';
    if (this.code === 'FILE_ERROR' || this.code === 'INVALID_OPTIONS') return 'client';
    if (this.code === 'IDEMPOTENCY_IN_PROGRESS') return 'server';
    if (this.status !== undefined && this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429) {
      return 'client';
    }
    return 'server';
  }

  /**
   * Worth another attempt: network failures, 5xx, 408, 429, and a 409 saying the first
   * request with the same Idempotency-Key still runs (its answer comes to the retry).
   */
  get retryable(): boolean {
    if (this.code === 'NETWORK' || this.code === 'IDEMPOTENCY_IN_PROGRESS') return true;
    if (this.status === undefined) return false;
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}
