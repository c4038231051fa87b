/**
 * The transport-free upload pipeline: multipart body in, typed events out. It knows no
 * Lambda, no node:http and no AWS SDK; adapters feed it `{ headers, body, signal }` and
 * render its events, storage is an {@link ObjectSink}.
 *
 * Promise to callers (docs/architecture.md, "Failure promise"): a request either stores every
 * file completely, or ends with an `error` event after every upload it started was aborted
 * and every file it had stored was deleted (the error names any that could not be).
 */
import type { Readable, Writable } from 'node:stream';
import type { ErrorPayload, Fields, StoredFile, UploadEvent, UploadResult } from '../protocol.ts';
import { errorPayload, toUploadError, UploadError } from './errors.ts';
import { EventChannel } from './event-channel.ts';
import { FileChecks, parseSha256 } from './file-checks.ts';
import { buildKey, newObjectId, sanitizeFilename } from './keys.ts';
import { buildFileMetadata, contentDisposition } from './metadata.ts';
import {
  parseMultipart,
  payloadTooLarge,
  type IncomingHeaders,
  type MultipartFile,
  type MultipartParse,
  type ParseLimits,
} from './multipart.ts';
import type { ObjectSink } from './sink.ts';
import type { CoreLogger } from './logger.ts';

export interface UploadRequest {
  /** Request headers; names in any case. Only Content-Type is read here. */
  headers: IncomingHeaders;
  /** The raw request body. It is read, never destroyed: adapters own the socket. */
  body: Readable;
  /** Aborts the request: client disconnect, deadline. Its reason becomes the error. */
  signal?: AbortSignal;
  /** The service's own metadata for every stored file (`uploaded-by`), before any field. */
  metadata?: Readonly<Record<string, string>>;
}

export interface UploadLimits extends ParseLimits {
  /** Largest request body, bytes (multipart framing included). */
  maxTotalBytes: number;
}

export interface UploadDeps {
  sink: ObjectSink;
  limits: UploadLimits;
  /** Prepended to every key, e.g. `uploads/`. */
  keyPrefix: string;
  /** Object id generator; default a random UUID. */
  newId?: () => string;
  /** A `file-progress` event at most every this many bytes of a file. Default 1 MiB. */
  progressEveryBytes?: number;
  /** Content types accepted (`image/png`, `image/*`), checked against magic bytes. Default: any. */
  allowedTypes?: readonly string[];
  logger?: CoreLogger;
  /**
   * Compute every file's SHA-256 (returned as `sha256`). Default false: only files whose
   * request sends a `sha256` field to check are hashed; S3 checks per-part CRC32s.
   */
  sha256?: boolean;
  /** Called with the length of every body chunk as it is read (the GC pacer, src/gc-pacer.ts). */
  onBodyBytes?: (bytes: number) => void;
  /**
   * Called with every part in the order the body holds them, before a file's bytes are read
   * (the request fingerprint of idempotent retries, src/app/idempotency.ts).
   */
  onPart?: (part: ParsedPart) => void;
  /**
   * Called once every file is stored, before `done`. A rejection fails the request the
   * all-or-nothing way (stored files deleted), so nothing is answered as stored that the
   * caller (the idempotency record) could not commit.
   */
  commit?: (result: UploadResult) => Promise<void>;
}

/** A part as parsed: a text field, or a file (its bytes go to the sink). */
export type ParsedPart =
  { kind: 'field'; name: string; value: string } | { kind: 'file'; field: string; filename: string; contentType: string };

const DEFAULT_PROGRESS_BYTES = 1024 * 1024;
/** Text field carrying the expected SHA-256 of the file part that follows it. */
export const SHA256_FIELD = 'sha256';

/**
 * Parses a multipart request and streams each file part into the sink. Yields
 * `file-started`, `file-progress`, `file-stored`, then exactly one terminal `done` or
 * `error`. Never throws. Breaking out of the loop early aborts the request and still waits
 * for every abort and delete to finish.
 */
export async function* uploadFiles(req: UploadRequest, deps: UploadDeps): AsyncGenerator<UploadEvent, void, undefined> {
  const channel = new EventChannel<UploadEvent>(
    (queued, next) => queued.type === 'file-progress' && next.type === 'file-progress' && queued.key === next.key,
  );
  const controller = new AbortController();
  const run = runPipeline(req, deps, controller, (event) => channel.push(event)).then(
    (terminal) => channel.push(terminal),
    (err: unknown) => channel.push({ type: 'error', ...errorPayload(toUploadError(err)) }),
  );
  let settled = false;
  void run.finally(() => {
    settled = true;
    channel.close();
  });
  try {
    yield* channel;
  } finally {
    // Only a consumer that stops before the end aborts: an error (and its stack) per
    // successful request is a cost the profile showed.
    if (!settled && !controller.signal.aborted) {
      controller.abort(new UploadError('CLIENT_CLOSED_REQUEST', 'The consumer stopped reading'));
    }
    await run;
  }
}

/** Runs one request to its end; resolves with the terminal event. */
async function runPipeline(
  req: UploadRequest,
  deps: UploadDeps,
  controller: AbortController,
  emit: (event: UploadEvent) => void,
): Promise<UploadEvent> {
  const { sink, limits, keyPrefix } = deps;
  const newId = deps.newId ?? newObjectId;
  const progressEvery = deps.progressEveryBytes ?? DEFAULT_PROGRESS_BYTES;
  const signal = controller.signal;
  const onBodyBytes = deps.onBodyBytes;

  /** First failure wins; everything after it is cleanup. */
  let failure: UploadError | undefined;
  // A deadline also tells the sink to cut requests in flight: there is no time to wait for them.
  const hardStop = new AbortController();
  let rejectFailed!: (err: UploadError) => void;
  const failed = new Promise<never>((_, reject) => (rejectFailed = reject));
  failed.catch(() => {});
  const fail = (err: unknown): void => {
    if (failure) return;
    failure = toUploadError(err);
    controller.abort(failure);
    if (failure.code === 'TIMEOUT') hardStop.abort(failure);
    rejectFailed(failure);
  };

  const onOuterAbort = (): void => {
    const reason: unknown = req.signal?.reason;
    fail(reason instanceof UploadError ? reason : new UploadError('CLIENT_CLOSED_REQUEST', 'Request aborted', { cause: reason }));
  };
  if (req.signal?.aborted) onOuterAbort();
  req.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // The consumer of uploadFiles() stopping early aborts this controller directly.
  signal.addEventListener('abort', () => fail(signal.reason), { once: true });

  const fieldList: Array<[string, string]> = [];
  /** Stored files by part order, so `files[]` follows the form whatever finishes first. */
  const stored: Array<StoredFile | undefined> = [];
  const inFlight: Array<Promise<void>> = [];
  const fileBodies = new Set<Readable>();
  let totalBytes = 0;
  /** Bytes of the file parts that have ended (their bodies are gone from fileBodies). */
  let endedFileBytes = 0;
  /** Expected SHA-256 sent in a `sha256` field, for the next file part. */
  let pendingSha256: string | undefined;

  try {
    let multipart: MultipartParse | undefined = parseMultipart(req.headers, limits, {
      failed: () => failure !== undefined,
      fail,
      field(name, value) {
        if (name === SHA256_FIELD) {
          pendingSha256 = parseSha256(value);
          if (pendingSha256 === undefined) {
            return fail(new UploadError('BAD_REQUEST', `Field "${SHA256_FIELD}" must be 64 hex digits or base64 of 32 bytes`));
          }
        }
        fieldList.push([name, value]);
        deps.onPart?.({ kind: 'field', name, value });
      },
      file(part) {
        deps.onPart?.({ kind: 'file', field: part.field, filename: part.filename, contentType: part.mimeType });
        const index = stored.length;
        stored.push(undefined);
        const expected = pendingSha256;
        pendingSha256 = undefined;
        inFlight.push(storeFile(index, part, expected).then(() => {}, fail));
      },
    });
    if (failure) throw failure;
    const countParts = multipart.count;

    // Counts the raw body against maxTotalBytes before busboy sees a byte.
    let stopFeeding: (() => void) | undefined = feed(
      req.body,
      multipart.parser,
      (chunk) => {
        const room = limits.maxTotalBytes - totalBytes;
        totalBytes += chunk.length;
        onBodyBytes?.(chunk.length);
        if (totalBytes <= limits.maxTotalBytes) countParts(chunk);
        return Math.min(chunk.length, room);
      },
      // Parsed up to the limit first: the outcome does not depend on chunk sizes.
      () => fail(payloadTooLarge(limits.maxTotalBytes)),
    );
    req.body.on('error', (err: unknown) =>
      fail(new UploadError('CLIENT_CLOSED_REQUEST', 'The request body failed before it ended', { cause: err })),
    );

    try {
      await Promise.race([multipart.finished, failed]);
      // The body is parsed: let go of the parser and its feed, which the uploads still in
      // flight would otherwise keep alive (and every scavenge copy) until they end.
      stopFeeding();
      stopFeeding = multipart = undefined;
      await Promise.race([Promise.all(inFlight), failed]);
      if (!failure && stored.length === 0) fail(new UploadError('NO_FILES', 'The request contains no file part'));
    } finally {
      // Stop reading the body whatever happened; the adapter decides what to do with the
      // rest of it (drain or close the connection). The body itself is never destroyed here.
      stopFeeding?.();
      if (failure) for (const body of fileBodies) body.destroy(failure);
    }
    // Every upload has settled (stored, or aborted and awaited) before we answer.
    await Promise.allSettled(inFlight);
    if (failure) throw failure;

    const files = stored.filter((f): f is StoredFile => f !== undefined);
    const result: UploadResult = { files, fields: collectFields(fieldList) };
    await deps.commit?.(result);
    return { type: 'done', ...result };
  } catch (err) {
    const error = toUploadError(err);
    // The terminal event carries code and message only: the cause (the S3 operation, its
    // status and request id) is logged here, on the request's own logger, or never.
    if (error.status >= 500 && error.cause !== undefined) deps.logger?.error('upload failed', { code: error.code, err: error });
    await Promise.allSettled(inFlight);
    return { type: 'error', ...withRollback(errorPayload(error), error.expose, await deleteStored()) };
  } finally {
    req.signal?.removeEventListener('abort', onOuterAbort);
  }

  /** Streams one file part into the sink; resolves with the stored file. */
  async function storeFile(index: number, part: MultipartFile, expectedSha256: string | undefined): Promise<StoredFile> {
    const { field, filename, mimeType: contentType } = part;
    const key = buildKey(keyPrefix, newId(), filename);
    const safeName = sanitizeFilename(filename);
    // A `sha256` field is this file's own: earlier files' values must not become its metadata.
    const metadataFields = fieldList.filter(([name]) => name !== SHA256_FIELD);
    if (expectedSha256) metadataFields.unshift([SHA256_FIELD, expectedSha256]);
    const { metadata, omitted } = buildFileMetadata(filename, metadataFields, req.metadata);
    emit({ type: 'file-started', field, filename, key, contentType });

    // A file that needs no check and cannot reach its first progress report (its bound says
    // so) goes to the sink as the parser hands it over: one stream stage less per small file.
    const bound = fileBytesBound();
    const checked =
      deps.allowedTypes !== undefined ||
      deps.sha256 === true ||
      expectedSha256 !== undefined ||
      bound === undefined ||
      bound >= progressEvery;
    const checks = checked
      ? new FileChecks({
          filename,
          declaredType: contentType,
          ...(deps.allowedTypes ? { allowedTypes: deps.allowedTypes } : {}),
          ...(expectedSha256 ? { expectedSha256 } : {}),
          sha256: deps.sha256 === true,
          progressEvery,
          onProgress: (bytes) => emit({ type: 'file-progress', field, key, bytes }),
        })
      : undefined;
    const body: Readable = checks ?? part.stream;
    fileBodies.add(body);
    // A truncated part must never be completed: destroying the body before its end makes
    // the sink fail and abort instead of finishing the object.
    part.onFailure((err) => {
      fail(err);
      body.destroy(err);
    });
    // A check that fails (type, checksum) fails the whole request with its own code.
    checks?.on('error', (err: unknown) => {
      if (err instanceof UploadError && (err.code === 'UNSUPPORTED_FILE_TYPE' || err.code === 'CHECKSUM_MISMATCH')) fail(err);
    });
    let size = 0;
    try {
      if (checks) part.stream.pipe(checks);
      const out = await sink.put({
        key,
        body,
        contentType,
        contentDisposition: contentDisposition(filename, safeName),
        metadata,
        signal,
        hardStop: hardStop.signal,
        ...(bound !== undefined ? { maxBytes: bound } : {}),
      });
      size = checks ? checks.bytesSeen : out.bytesRead;
      const file: StoredFile = {
        field,
        filename,
        key,
        size,
        contentType,
        etag: out.etag,
        bucket: sink.bucket,
        sha256: checks?.sha256 ?? '',
      };
      if (out.versionId) file.versionId = out.versionId;
      if (out.checksumCRC32) file.checksumCRC32 = out.checksumCRC32;
      if (omitted.length) file.metadataOmitted = omitted;
      // Recorded before it is verified: an object that landed is deleted if anything fails.
      stored[index] = file;
      if (out.storedSize !== undefined && out.storedSize !== size) {
        throw new UploadError(
          'STORAGE_FAILED',
          `The object store holds ${out.storedSize} bytes for ${JSON.stringify(filename)}, ${size} were sent`,
        );
      }
      emit({ type: 'file-stored', ...file });
      return file;
    } finally {
      endedFileBytes += checks ? checks.bytesSeen : size;
      fileBodies.delete(body);
      // Whatever the sink did, the part must be consumed so busboy can finish.
      if (checks) part.stream.unpipe(checks);
      part.stream.resume();
    }
  }

  /**
   * Most bytes a new file can have: the request's Content-Length less the bytes of the other
   * files so far (counted as they pass, so the bound errs on the large side), and the file
   * limit. Lets the sink take memory for a small file's own size. Undefined without a length.
   */
  function fileBytesBound(): number | undefined {
    const length = Number(headerOf(req.headers, 'content-length'));
    if (!Number.isSafeInteger(length) || length < 0) return undefined;
    let others = endedFileBytes;
    // A body passed through unchecked counts nothing until it ends: the bound errs large.
    for (const b of fileBodies) if (b instanceof FileChecks) others += b.bytesSeen;
    return Math.max(0, Math.min(length - others, limits.maxFileBytes));
  }

  /** Undoes a failed request: deletes every file it stored; says which were and were not. */
  async function deleteStored(): Promise<Rollback> {
    const files = stored.filter((f): f is StoredFile => f !== undefined);
    const results = await Promise.allSettled(files.map((f) => sink.delete(f.key, f.versionId)));
    const rollback: Rollback = { deleted: [], notDeleted: [] };
    results.forEach((result, i) => {
      const key = files[i]!.key;
      if (result.status === 'fulfilled') rollback.deleted.push(key);
      else {
        rollback.notDeleted.push(key);
        deps.logger?.error('could not delete a file of a failed request', { key, err: result.reason });
      }
    });
    return rollback;
  }
}

/**
 * Writes the body into the parser with backpressure, as `pipe` does, without a stream stage
 * in between: `take` sees every chunk first and says how many of its bytes may pass; fewer
 * than all writes those, stops, and calls `over`. Returns the function that stops feeding
 * (the body is left paused, for the adapter to drain or close).
 */
function feed(body: Readable, parser: Writable, take: (chunk: Buffer) => number, over: () => void): () => void {
  let stopped = false;
  const onData = (chunk: Buffer): void => {
    const n = take(chunk);
    if (n < chunk.length) {
      if (n > 0) parser.write(chunk.subarray(0, n));
      stop();
      return over();
    }
    if (!parser.write(chunk)) body.pause();
  };
  const onDrain = (): void => {
    if (!stopped) body.resume();
  };
  const onEnd = (): void => {
    stop();
    parser.end();
  };
  function stop(): void {
    if (stopped) return;
    stopped = true;
    body.off('data', onData);
    body.off('end', onEnd);
    parser.off('drain', onDrain);
    body.pause();
  }
  body.on('data', onData);
  body.on('end', onEnd);
  parser.on('drain', onDrain);
  return stop;
}

interface Rollback {
  deleted: string[];
  notDeleted: string[];
}

/** The error as the caller sees it, saying what the rollback deleted and what it could not. */
function withRollback(payload: ErrorPayload, exposed: boolean, { deleted, notDeleted }: Rollback): ErrorPayload {
  const out = { ...payload };
  const n = deleted.length;
  if (n) {
    if (exposed) out.message += `; ${n} file${n === 1 ? '' : 's'} this request had stored ${n === 1 ? 'was' : 'were'} deleted`;
    out.deleted = deleted;
  }
  if (notDeleted.length) {
    if (exposed) out.message += `; could not delete: ${notDeleted.join(', ')}`;
    out.notDeleted = notDeleted;
  }
  return out;
}

/** Text fields as an object; a name sent more than once collects its values in order. */
function collectFields(list: ReadonlyArray<readonly [string, string]>): Fields {
  const fields: Fields = Object.create(null) as Fields;
  for (const [name, value] of list) {
    const prev = fields[name];
    if (prev === undefined) fields[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else fields[name] = [prev, value];
  }
  return { ...fields };
}

function headerOf(headers: IncomingHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
