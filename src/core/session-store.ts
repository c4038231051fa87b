/**
 * The storage port of upload sessions (the S3 implementation is src/storage/s3-sessions.ts).
 * Errors thrown must already be UploadErrors: INVALID_SESSION when the multipart upload no
 * longer exists (completed or aborted), PART_MISMATCH when the store refuses the part list,
 * STORAGE_FAILED for anything else.
 */
import type { CompletedPart } from '../protocol.ts';

export interface CreateMultipartInput {
  key: string;
  contentType: string;
  contentDisposition: string;
  metadata: Record<string, string>;
}

/** A part as the store holds it. */
export interface ListedPart {
  partNumber: number;
  size: number;
  etag: string;
}

export interface StoredObjectInfo {
  size: number;
  etag: string;
  versionId?: string;
}

export interface SessionStore {
  readonly bucket: string;
  /** Starts a multipart upload; resolves with its upload id. */
  createMultipart(input: CreateMultipartInput): Promise<string>;
  /** A presigned URL for a PUT of one part, valid for `expiresInSeconds`. */
  presignPart(key: string, uploadId: string, partNumber: number, expiresInSeconds: number): Promise<string>;
  /**
   * Every part the store holds for the upload, by part number; `undefined` when the store
   * cannot list parts (s3rver), so the caller verifies the object after completion instead.
   */
  listParts(key: string, uploadId: string): Promise<ListedPart[] | undefined>;
  complete(key: string, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string; versionId?: string }>;
  /** Size and ETag of a stored object; `undefined` when there is none. */
  head(key: string): Promise<StoredObjectInfo | undefined>;
  /** The first `bytes` bytes of an object (fewer when it is shorter). */
  readStart(key: string, bytes: number): Promise<Buffer>;
  /** Aborts a multipart upload; an upload already gone is not an error. */
  abort(key: string, uploadId: string): Promise<void>;
  delete(key: string, versionId?: string): Promise<void>;
}
