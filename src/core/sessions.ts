/**
 * Upload sessions, the direct-to-S3 lane: the caller PUTs parts straight to S3 with presigned
 * URLs while the service keeps control. It chooses the part size, signs the URLs (a batch at
 * a time), verifies at completion that the parts add up to the declared size (part count,
 * each part's size and ETag), completes, and aborts on every refusal so no multipart upload
 * is left open. Transport-free: adapters hand in parsed JSON, storage is a SessionStore.
 *
 * Rule for callers: a `complete` that is refused (4xx) ends the session; the multipart
 * upload is aborted before the answer is sent. A complete that fails on the store's side
 * (5xx) leaves the session as it was, so it can be retried.
 */
import type { CompletedPart, PartUrl, StoredFile, UploadResult, UploadSession } from '../protocol.ts';
import { UploadError } from './errors.ts';
import { checkFileType, typeAllowed } from './file-checks.ts';
import { buildKey, newObjectId, sanitizeFilename } from './keys.ts';
import { buildFileMetadata, contentDisposition, UPLOADED_BY_METADATA_KEY } from './metadata.ts';
import { parseComplete, parseCreate, parsePartNumbers } from './session-request.ts';
import type { ListedPart, SessionStore } from './session-store.ts';
import { signSessionToken, verifySessionToken, type SessionClaims } from './session-token.ts';
import type { CoreLogger } from './logger.ts';

export interface SessionOptions {
  store: SessionStore;
  /** HMAC key of session ids (config `UPLOAD_SESSION_SECRET`). */
  secret: string;
  /** Lifetime of a session and its URLs, seconds (config `UPLOAD_SESSION_TTL_SECONDS`). */
  ttlSeconds: number;
  /** Part URLs per answer (config `UPLOAD_SESSION_BATCH_PARTS`). */
  batchParts: number;
  /** Smallest part size, bytes (config `S3_PART_BYTES`); grows with the file to fit 10,000 parts. */
  minPartBytes: number;
  /** Largest file, bytes (config `UPLOAD_MAX_FILE_BYTES`). */
  maxFileBytes: number;
  keyPrefix: string;
  /** Content types accepted (config `UPLOAD_ALLOWED_TYPES`); undefined for any. */
  allowedTypes?: readonly string[];
  /** Most caller `fields` per session (config `UPLOAD_MAX_FIELDS`). Default 100. */
  maxFields?: number;
  /** Largest caller field value, bytes (config `UPLOAD_MAX_FIELD_BYTES`). Default 64 KiB. */
  maxFieldBytes?: number;
  logger?: CoreLogger;
  /** Clock, ms. Default Date.now. */
  now?: () => number;
  newId?: () => string;
}

export interface CompleteOutcome {
  /** 201 when this call completed the upload, 200 when an earlier call had. */
  status: 200 | 201;
  result: UploadResult;
}

/**
 * The session operations. Bodies are read through `readBody` (parsed JSON; it throws an
 * UploadError for a body that is not JSON or too large) only after the id was verified, so a
 * forged id costs no body read, and a complete whose body cannot be read is a refusal like any
 * other.
 */
export type ReadBody = () => Promise<unknown>;

/** Who calls, as the app knows it. */
export interface SessionCaller {
  /** Recorded as the object's `uploaded-by` metadata. */
  uploadedBy?: string;
  /**
   * The caller's own key prefix (below the service's), when objects are kept per caller: new
   * sessions get keys under it, and a session whose key is elsewhere is not this caller's.
   */
  keyPrefix?: string;
}

export interface SessionService {
  create(readBody: ReadBody, caller?: SessionCaller): Promise<UploadSession>;
  signParts(id: string, readBody: ReadBody, caller?: SessionCaller): Promise<{ parts: PartUrl[]; expiresAt: string }>;
  complete(id: string, readBody: ReadBody, caller?: SessionCaller): Promise<CompleteOutcome>;
  abort(id: string, caller?: SessionCaller): Promise<void>;
}

const MiB = 1024 * 1024;
/** S3 multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
const S3_PART_LIMITS = { minPartBytes: 5 * MiB, maxPartBytes: 5 * 1024 * MiB, maxParts: 10_000 } as const;
/** Bytes read back from the object's start for the magic-byte type check. */
const SNIFF_BYTES = 16;

/** Parts of a file of `size` bytes cut in parts of `partSize` (at least one: S3 needs one). */
export function countParts(size: number, partSize: number): number {
  return Math.max(1, Math.ceil(size / partSize));
}

/**
 * Part size for a file: `minPartBytes`, or more (a whole number of MiB) when the file would
 * not fit in S3's 10,000 parts. Throws FILE_TOO_LARGE past 10,000 parts of 5 GiB.
 */
export function choosePartSize(size: number, minPartBytes: number): { partSize: number; partCount: number } {
  const needed = Math.ceil(size / S3_PART_LIMITS.maxParts / MiB) * MiB;
  const partSize = Math.max(minPartBytes, S3_PART_LIMITS.minPartBytes, needed);
  if (partSize > S3_PART_LIMITS.maxPartBytes) {
    throw new UploadError('FILE_TOO_LARGE', `A file of ${size} bytes does not fit in ${S3_PART_LIMITS.maxParts} parts`);
  }
  return { partSize, partCount: countParts(size, partSize) };
}

/** Expected size of part `n` (1-based) of a session. */
export function expectedPartSize(n: number, size: number, partSize: number): number {
  const count = countParts(size, partSize);
  return n < count ? partSize : size - (count - 1) * partSize;
}

const unquote = (etag: string): string => etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();

/**
 * Checks the parts the store holds against the session: their sizes must add up to the
 * declared size (SIZE_MISMATCH), and there must be exactly parts 1..n, each of the expected
 * size, with the ETags the caller reported (PART_MISMATCH). Returns the error, if any.
 */
export function checkListedParts(
  listed: readonly ListedPart[],
  claims: Pick<SessionClaims, 'size' | 'partSize'>,
  reported: readonly CompletedPart[],
): UploadError | undefined {
  const count = countParts(claims.size, claims.partSize);
  const held = new Set(listed.map((p) => p.partNumber));
  for (let n = 1; n <= count; n++) {
    if (!held.has(n)) return new UploadError('PART_MISMATCH', `Part ${n} was never uploaded`);
  }
  if (listed.length !== count) {
    return new UploadError('PART_MISMATCH', `The store holds ${listed.length} parts; the session has ${count}`);
  }
  const total = listed.reduce((n, p) => n + p.size, 0);
  if (total !== claims.size) {
    return new UploadError('SIZE_MISMATCH', `The uploaded parts hold ${total} bytes; the session was created for ${claims.size}`);
  }
  const etags = new Map(reported.map((p) => [p.partNumber, unquote(p.etag)]));
  for (const [i, part] of listed.entries()) {
    const n = i + 1;
    const want = expectedPartSize(n, claims.size, claims.partSize);
    if (part.size !== want) {
      return new UploadError('PART_MISMATCH', `Part ${n} has ${part.size} bytes; it must have ${want}`);
    }
    if (etags.get(n) !== unquote(part.etag)) {
      return new UploadError('PART_MISMATCH', `Part ${n}: the ETag sent does not match the stored part`);
    }
  }
  return undefined;
}

export function createSessionService(options: SessionOptions): SessionService {
  const { store, secret, ttlSeconds, batchParts, logger } = options;
  const now = options.now ?? Date.now;
  const newId = options.newId ?? newObjectId;
  const nowSeconds = () => Math.floor(now() / 1000);
  const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
  const fieldLimits = { maxFields: options.maxFields ?? 100, maxFieldBytes: options.maxFieldBytes ?? 64 * 1024 };

  async function presign(claims: SessionClaims, partNumbers: number[]): Promise<PartUrl[]> {
    const expiresIn = Math.max(1, claims.exp - nowSeconds());
    return Promise.all(
      partNumbers.map(async (partNumber) => ({
        partNumber,
        url: await store.presignPart(claims.key, claims.uploadId, partNumber, expiresIn),
      })),
    );
  }

  /** Aborts the session's upload, logging (not throwing) a failure: the refusal is the answer. */
  async function abortQuietly(claims: SessionClaims, why: string): Promise<void> {
    try {
      await store.abort(claims.key, claims.uploadId);
    } catch (err) {
      logger?.error('could not abort a refused upload session', { key: claims.key, why, err });
    }
  }

  /** The claims of an authentic session of this caller (another caller's session is not found). */
  function verify(id: string, caller: SessionCaller): { claims: SessionClaims; expired: boolean } {
    const verified = verifySessionToken(id, secret, store.bucket, nowSeconds());
    if (caller.keyPrefix !== undefined && !verified.claims.key.startsWith(options.keyPrefix + caller.keyPrefix)) {
      throw new UploadError('INVALID_SESSION', 'No such upload session');
    }
    return verified;
  }

  /** An authentic, unexpired session; an expired one is aborted and refused. */
  async function open(id: string, caller: SessionCaller): Promise<SessionClaims> {
    const { claims, expired } = verify(id, caller);
    if (expired) {
      await abortQuietly(claims, 'expired');
      throw new UploadError('SESSION_EXPIRED', `The upload session expired at ${iso(claims.exp)}; start a new one`);
    }
    return claims;
  }

  function storedFile(claims: SessionClaims, etag: string, versionId?: string): StoredFile {
    const file: StoredFile = {
      field: 'file',
      filename: claims.filename,
      key: claims.key,
      size: claims.size,
      contentType: claims.contentType,
      etag,
      bucket: store.bucket,
      sha256: claims.sha256 ?? '',
    };
    if (versionId) file.versionId = versionId;
    return file;
  }

  /** A completed object that turned out wrong is deleted; the error is the answer. */
  async function removeObject(claims: SessionClaims, versionId: string | undefined, why: string): Promise<void> {
    try {
      await store.delete(claims.key, versionId);
    } catch (err) {
      logger?.error('could not delete a refused object', { key: claims.key, why, err });
    }
  }

  async function completeVerified(claims: SessionClaims, parts: CompletedPart[]): Promise<CompleteOutcome> {
    const partCount = countParts(claims.size, claims.partSize);
    if (claims.size > options.maxFileBytes) {
      throw new UploadError('FILE_TOO_LARGE', `The file is larger than ${options.maxFileBytes} bytes`);
    }
    if (parts.length !== partCount) throw new UploadError('PART_MISMATCH', `Expected ${partCount} parts`);
    const listed = await store.listParts(claims.key, claims.uploadId);
    if (listed) {
      const mismatch = checkListedParts(listed, claims, parts);
      if (mismatch) throw mismatch;
    }
    const done = await store.complete(claims.key, claims.uploadId, parts);
    // Always read the size back: the only check on a store without ListParts, and cheap
    // insurance on the others. Some stores (radosgw) answer Complete with an empty ETag.
    const head = await store.head(claims.key);
    const versionId = done.versionId ?? head?.versionId;
    if (!head || head.size !== claims.size) {
      await removeObject(claims, versionId, 'size');
      throw new UploadError(
        'SIZE_MISMATCH',
        `The completed object holds ${head?.size ?? 0} bytes; the session was created for ${claims.size}. It was deleted`,
      );
    }
    if (options.allowedTypes) {
      const refused = checkFileType(
        claims.contentType,
        await store.readStart(claims.key, SNIFF_BYTES),
        options.allowedTypes,
        claims.filename,
      );
      if (refused) {
        await removeObject(claims, versionId, 'type');
        throw refused;
      }
    }
    return { status: 201, result: { files: [storedFile(claims, done.etag || head.etag, versionId)], fields: {} } };
  }

  /** Complete called again after a success (its answer was lost): the object is there. */
  async function alreadyCompleted(claims: SessionClaims, cause: UploadError): Promise<CompleteOutcome> {
    const head = await store.head(claims.key);
    if (!head || head.size !== claims.size) {
      throw new UploadError('INVALID_SESSION', 'The upload session no longer exists (it was aborted)', { cause });
    }
    return { status: 200, result: { files: [storedFile(claims, head.etag, head.versionId)], fields: {} } };
  }

  return {
    async create(readBody, caller = {}) {
      const input = parseCreate(await readBody(), fieldLimits);
      if (input.size > options.maxFileBytes) {
        throw new UploadError(
          'FILE_TOO_LARGE',
          `File ${JSON.stringify(input.filename)} is larger than ${options.maxFileBytes} bytes`,
        );
      }
      if (options.allowedTypes && !typeAllowed(input.contentType.split(';', 1)[0]!.trim().toLowerCase(), options.allowedTypes)) {
        throw new UploadError(
          'UNSUPPORTED_FILE_TYPE',
          `File ${JSON.stringify(input.filename)} has type ${input.contentType}; allowed: ${options.allowedTypes.join(', ')}`,
        );
      }
      const { partSize, partCount } = choosePartSize(input.size, options.minPartBytes);
      const key = buildKey(options.keyPrefix + (caller.keyPrefix ?? ''), newId(), input.filename);
      // Caller fields get the stream-through lane's rules (same encoding, same 2 KB budget,
      // same reserved keys); `sha256` goes first so that no field can take its place.
      const { metadata, omitted } = buildFileMetadata(
        input.filename,
        [...(input.sha256 ? ([['sha256', input.sha256]] as const) : []), ...input.fields],
        caller.uploadedBy !== undefined ? { [UPLOADED_BY_METADATA_KEY]: caller.uploadedBy } : {},
      );
      const uploadId = await store.createMultipart({
        key,
        contentType: input.contentType,
        contentDisposition: contentDisposition(input.filename, sanitizeFilename(input.filename)),
        metadata,
      });
      const claims: SessionClaims = {
        v: 1,
        bucket: store.bucket,
        key,
        uploadId,
        size: input.size,
        partSize,
        contentType: input.contentType,
        filename: input.filename,
        ...(input.sha256 ? { sha256: input.sha256 } : {}),
        exp: nowSeconds() + ttlSeconds,
      };
      let parts: PartUrl[];
      try {
        parts = await presign(
          claims,
          Array.from({ length: Math.min(partCount, batchParts) }, (_, i) => i + 1),
        );
      } catch (err) {
        await abortQuietly(claims, 'presign failed');
        throw err;
      }
      return {
        sessionId: signSessionToken(claims, secret),
        key,
        bucket: store.bucket,
        size: input.size,
        partSize,
        partCount,
        parts,
        expiresAt: iso(claims.exp),
        ...(omitted.length ? { metadataOmitted: omitted } : {}),
      };
    },

    async signParts(id, readBody, caller = {}) {
      const claims = await open(id, caller);
      const wanted = parsePartNumbers(await readBody(), countParts(claims.size, claims.partSize));
      return { parts: await presign(claims, wanted.slice(0, batchParts)), expiresAt: iso(claims.exp) };
    },

    async complete(id, readBody, caller = {}) {
      const claims = await open(id, caller);
      try {
        const parts = parseComplete(await readBody(), countParts(claims.size, claims.partSize));
        return await completeVerified(claims, parts);
      } catch (err) {
        if (err instanceof UploadError && err.code === 'INVALID_SESSION') return alreadyCompleted(claims, err);
        // A refusal ends the session; a failure of the store (5xx) leaves it to be retried.
        if (err instanceof UploadError && err.status < 500) await abortQuietly(claims, err.code);
        throw err;
      }
    },

    async abort(id, caller = {}) {
      // An expired session may still be aborted (that is all it is good for).
      const { claims } = verify(id, caller);
      await store.abort(claims.key, claims.uploadId);
    },
  };
}
