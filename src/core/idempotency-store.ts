/**
 * The storage port of idempotent retries (src/app/idempotency.ts): one small record per
 * (caller, Idempotency-Key). The S3 implementation is src/storage/s3-idempotency.ts.
 */
import type { UploadResult } from '../protocol.ts';

export interface IdempotencyRecord {
  state: 'in-progress' | 'completed';
  /** When the first request started (ISO 8601). */
  startedAt: string;
  /** The last write: an in-progress record's heartbeat, a completed record's completion (ISO 8601). */
  updatedAt: string;
  /** SHA-256 of the request as parsed (completed records). */
  fingerprint?: string;
  /** The first request's answer (completed records). */
  answer?: UploadResult;
}

export interface VersionedRecord {
  record: IdempotencyRecord;
  /** Opaque version (the S3 ETag) for {@link IdempotencyStore.replace}. */
  version: string;
}

/** The port of idempotency records. Errors thrown must be UploadErrors (STORAGE_FAILED). */
export interface IdempotencyStore {
  /** Writes the record unless one exists: its version, or the record that exists (undefined if it vanished meanwhile). */
  create(id: string, record: IdempotencyRecord): Promise<{ version: string } | { existing: VersionedRecord | undefined }>;
  /** Replaces the record only if it still is `version`: the new version, or undefined when it changed. */
  replace(id: string, record: IdempotencyRecord, version: string): Promise<string | undefined>;
  /** Writes the record unconditionally (the owner's heartbeat and completion). */
  put(id: string, record: IdempotencyRecord): Promise<void>;
  /** Removes the record; an absent one is not an error. */
  delete(id: string): Promise<void>;
}
