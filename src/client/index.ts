/**
 * Client library for services that upload files to s3-stream-upload. It depends only on the
 * wire contract (src/protocol.ts) and takes an injected `fetch`.
 *
 * Two lanes, picked per file by size:
 * - stream-through: files up to `streamMaxBytes` (default 4 MiB) go in one streamed
 *   `multipart/form-data` POST /uploads (grouped, at most `maxFilesPerRequest` files and
 *   `streamMaxBytes` of file bytes per request, so a request fits Lambda's 6 MB payload);
 * - direct: larger files go through an upload session, parts PUT straight to S3 in parallel.
 *
 * Memory stays fixed: files are read from disk as they are sent, never whole (a stream small
 * enough for the stream-through lane is the exception: it is held, up to `streamMaxBytes`, so
 * that a retry can send it again).
 *
 * Every call to the service carries an `Idempotency-Key` on `POST /uploads` (one per request,
 * the same on its retries) and, with `sigv4`, an AWS SigV4 signature; the part PUTs to S3 go
 * with their presigned URLs only.
 *
 * @example
 * const client = createUploadClient({ url: 'https://abc.lambda-url.eu-west-1.on.aws', sigv4: true });
 * const files = await client.upload(['report.pdf', { data: Buffer.from('hi'), name: 'hi.txt' }], {
 *   fields: { customer: 'c-42' },
 *   onProgress: (p) => console.log(p.totalBytes, '/', p.totalSize),
 * });
 */
import { createHash, randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { StoredFile, UploadResult } from '../protocol.ts';
import { uploadDirect, type DirectFile } from './direct-upload.ts';
import { UploadClientError } from './errors.ts';
import { abortError, backoffMs, fetchFailure, responseError, sleep, type FetchLike } from './http.ts';
import { multipartBody } from './multipart-body.ts';
import { findResumable, type SessionState } from './session-state.ts';
import { createSigner, type SigV4Options, type SignRequest } from './sigv4.ts';
import { bufferSource, dataSource, pathSource, streamSource, type ByteSource } from './sources.ts';

export { UploadClientError, type ClientErrorCode } from './errors.ts';
export type { SessionState } from './session-state.ts';
export type { FetchLike } from './http.ts';
export { inferSigV4, type AwsCredentials, type AwsCredentialsProvider, type SigV4Options } from './sigv4.ts';
export type { CompletedPart, ErrorCode, StoredFile } from '../protocol.ts';

const MiB = 1024 * 1024;

export interface UploadClientOptions {
  /** Base URL of the service (`https://host` or an API Gateway stage URL); routes are appended. */
  url: string;
  /** Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Bearer token (the server's `UPLOAD_AUTH_TOKEN`). */
  token?: string;
  /** Extra headers on every call to the service (e.g. `x-api-key` for API Gateway). Not sent to S3. */
  headers?: Record<string, string>;
  /**
   * Sign every call to the service with AWS SigV4 (IAM auth of a Function URL or API
   * Gateway). `true` infers region and service from a `*.lambda-url.<region>.on.aws` or
   * `*.execute-api.<region>.amazonaws.com` URL. Credentials default to the AWS SDK's chain.
   * Default: not signed.
   */
  sigv4?: SigV4Options | true;
  /** Parts of one file in flight at once (one buffer of the part size each). Default 4. */
  partConcurrency?: number;
  /** Retries per request (each part, each service call), with exponential backoff. Default 4. */
  retries?: number;
  /** First backoff, ms, doubled per retry (±50 % jitter, at most 10 s). Default 250. */
  retryBaseMs?: number;
  /**
   * Largest file sent through the stream-through lane, bytes; larger files use the direct lane.
   * Default 4 MiB (below Lambda's ~4.4 MB of file per request).
   */
  streamMaxBytes?: number;
  /** Most files per stream-through request (the server's `UPLOAD_MAX_FILES`). Default 10. */
  maxFilesPerRequest?: number;
}

/** What to upload: a path, a path with a name or type, bytes in memory, or a stream of a known size. */
export type FileInput =
  | string
  | { path: string; name?: string; contentType?: string; sha256?: string }
  | { data: Buffer | Uint8Array | Blob; name: string; contentType?: string; sha256?: string }
  | {
      /** Read once, front to back; it must yield exactly `size` bytes. */
      stream: Readable;
      size: number;
      name: string;
      contentType?: string;
      sha256?: string;
    };

export type Lane = 'stream' | 'direct';

export interface Progress {
  /** Index of the file in the list given to upload(). */
  index: number;
  /** The file's path (absolute), for a path input; else undefined. */
  path: string | undefined;
  /** The file's name as sent. */
  name: string;
  lane: Lane;
  /** Bytes of this file sent so far, and its size. */
  bytes: number;
  size: number;
  /** Bytes of all files sent so far, and their total size. */
  totalBytes: number;
  totalSize: number;
}

export interface UploadOptions {
  signal?: AbortSignal;
  /**
   * Caller metadata for every file of the call, stored as the objects' user metadata (keys
   * become lowercase header tokens, values percent-encoded UTF-8; S3's 2 KB budget: names of
   * fields that did not fit come back in `metadataOmitted`). Sent as text fields before the
   * files on the stream-through lane, as the session's `fields` on the direct lane.
   */
  fields?: Record<string, string>;
  /** Called as bytes go out (at most every 256 KiB per part or 64 KiB of a streamed body). */
  onProgress?: (progress: Progress) => void;
  /**
   * Keep the session of a direct upload that failed (other than by cancel) open and put its
   * state on the error (`error.sessions`) for `resume`. Default false: failures abort.
   */
  resumable?: boolean;
  /**
   * With `resumable`, a cancel (the signal) keeps direct-lane sessions open too, with their
   * state on the error, instead of aborting them. Default false.
   */
  keepSessionsOnAbort?: boolean;
  /** Saved sessions to resume; a file with a matching one (same path, size, mtime) sends only missing parts. */
  resume?: readonly SessionState[];
  /** Called when a direct upload's session starts and after each part it completed (to save it). */
  onSession?: (state: SessionState) => void;
  /**
   * Declare each file's SHA-256 (read once more from disk before sending): the service checks
   * the bytes it stores against it (422 CHECKSUM_MISMATCH otherwise), stores it as the
   * object's `sha256` metadata and returns it. Default true; `false` sends none (the service
   * then hashes nothing unless it runs with UPLOAD_SHA256=always).
   */
  sha256?: boolean;
  /** Called for every part PUT attempt (tests and diagnostics); `path` is the file's path or name. */
  onPartPut?: (partNumber: number, path: string) => void;
}

/** A stored file as the service answered, plus where it came from. */
export interface UploadedFile extends StoredFile {
  /** The path it was read from (absolute), for a path input; else undefined. */
  path: string | undefined;
  lane: Lane;
}

export interface UploadClient {
  /** Uploads the files; resolves with one entry per file, in the order given. */
  upload(files: readonly FileInput[], options?: UploadOptions): Promise<UploadedFile[]>;
}

interface Prepared {
  index: number;
  path: string | undefined;
  /** The path, or the name for bytes and streams (messages, onPartPut). */
  label: string;
  source: ByteSource;
  name: string;
  contentType: string;
  size: number;
  mtimeMs: number;
  sha256?: string;
}

/** A content type from the file name, for the few types services usually care about. */
const TYPES: Record<string, string> = {
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  txt: 'text/plain',
  csv: 'text/csv',
  json: 'application/json',
  zip: 'application/zip',
  gz: 'application/gzip',
  mp4: 'video/mp4',
};

export function guessContentType(name: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase();
  return (ext && TYPES[ext]) || 'application/octet-stream';
}

/** SHA-256 of a source, read through one reused 1 MiB buffer (no garbage for the GC to chase). */
async function sourceSha256(source: ByteSource, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(MiB, Math.max(1, source.size)));
  const reader = await source.open();
  try {
    for (let position = 0; ;) {
      if (signal?.aborted) throw abortError(signal);
      const bytesRead = await reader.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await reader.close();
  }
  return hash.digest('hex');
}

/** SHA-256 of a whole request body as it will be sent, streamed (the SigV4 payload hash). */
async function streamSha256(stream: ReadableStream<Uint8Array>): Promise<string> {
  const hash = createHash('sha256');
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    hash.update(value);
  }
  return hash.digest('hex');
}

function requireName(name: unknown): string {
  if (typeof name !== 'string' || name === '') {
    throw new UploadClientError(
      'FILE_ERROR',
      'Bytes and streams to upload need a name ({ data, name } or { stream, size, name })',
    );
  }
  return name;
}

export function createUploadClient(options: UploadClientOptions): UploadClient {
  const baseUrl = options.url.replace(/\/+$/, '');
  const fetchFn: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  const sign: SignRequest | undefined = options.sigv4 ? createSigner(options.sigv4, baseUrl) : undefined;
  const policy = { retries: options.retries ?? 4, baseMs: options.retryBaseMs ?? 250 };
  const partConcurrency = Math.max(1, options.partConcurrency ?? 4);
  const streamMaxBytes = options.streamMaxBytes ?? 4 * MiB;
  const maxFilesPerRequest = Math.max(1, options.maxFilesPerRequest ?? 10);

  async function prepare(files: readonly FileInput[]): Promise<Prepared[]> {
    return Promise.all(files.map(async (input, index) => prepareOne(input, index)));
  }

  async function prepareOne(input: FileInput, index: number): Promise<Prepared> {
    const spec = typeof input === 'string' ? { path: input } : input;
    const common = (name: string) => ({
      index,
      name,
      contentType: spec.contentType ?? guessContentType(name),
      ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
    });
    if ('data' in spec) {
      if (!(spec.data instanceof Uint8Array) && !(typeof Blob !== 'undefined' && spec.data instanceof Blob)) {
        throw new UploadClientError('FILE_ERROR', `${spec.name}: data must be a Buffer, Uint8Array or Blob`);
      }
      const source = dataSource(spec.data);
      return { ...common(requireName(spec.name)), path: undefined, label: spec.name, source, size: source.size, mtimeMs: 0 };
    }
    if ('stream' in spec) {
      if (!Number.isSafeInteger(spec.size) || spec.size < 0) {
        throw new UploadClientError('FILE_ERROR', `${spec.name}: a stream needs its exact size in bytes`);
      }
      const source = streamSource(spec.stream, spec.size, spec.name);
      return { ...common(requireName(spec.name)), path: undefined, label: spec.name, source, size: spec.size, mtimeMs: 0 };
    }
    if (typeof spec.path !== 'string') {
      throw new UploadClientError('FILE_ERROR', 'A file to upload is a path, { path }, { data, name } or { stream, size, name }');
    }
    const path = resolve(spec.path);
    let info;
    try {
      info = await stat(path);
    } catch (err) {
      throw new UploadClientError(
        'FILE_ERROR',
        `Cannot read ${spec.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        {
          cause: err,
        },
      );
    }
    if (!info.isFile()) throw new UploadClientError('FILE_ERROR', `${spec.path} is not a regular file`);
    return {
      ...common(spec.name ?? basename(path)),
      path,
      label: path,
      source: pathSource(path, info.size, info.mtimeMs),
      size: info.size,
      mtimeMs: info.mtimeMs,
    };
  }

  /** Small files in groups that fit one request each. */
  function batches(small: Prepared[]): Prepared[][] {
    const out: Prepared[][] = [];
    let current: Prepared[] = [];
    let bytes = 0;
    for (const f of small) {
      if (current.length && (current.length >= maxFilesPerRequest || bytes + f.size > streamMaxBytes)) {
        out.push(current);
        current = [];
        bytes = 0;
      }
      current.push(f);
      bytes += f.size;
    }
    if (current.length) out.push(current);
    return out;
  }

  async function postStreamed(
    batch: Prepared[],
    fields: ReadonlyArray<readonly [string, string]>,
    signal: AbortSignal | undefined,
    onBytes: (f: Prepared, n: number) => void,
  ) {
    const body = multipartBody(
      batch.map((f) => ({
        source: f.source,
        name: f.name,
        contentType: f.contentType,
        size: f.size,
        field: 'file',
        ...(f.sha256 ? { sha256: f.sha256 } : {}),
      })),
      fields,
    );
    // One key per logical request, the same on every retry: a service that had stored the
    // first attempt (its answer lost) answers the retry with that result instead of a copy.
    const idempotencyKey = randomUUID();
    for (let attempt = 0; ; attempt++) {
      const sent = new Map<number, number>();
      let error: UploadClientError;
      let retryAfter: string | null = null;
      try {
        const url = `${baseUrl}/uploads`;
        let requestHeaders: Record<string, string> = {
          ...headers,
          accept: 'application/json',
          'content-type': body.contentType,
          'content-length': String(body.length),
          'idempotency-key': idempotencyKey,
        };
        if (sign) {
          // The body is read once more to hash it: it is bounded (streamMaxBytes, files
          // re-read from disk in 64 KiB slices), and the hash must be that of the bytes sent.
          const payloadHash = await streamSha256(body.stream(() => {}));
          requestHeaders = await sign({ method: 'POST', url, headers: requestHeaders, payloadHash });
        }
        const res = await fetchFn(url, {
          method: 'POST',
          headers: requestHeaders,
          body: body.stream((i, n) => {
            sent.set(i, (sent.get(i) ?? 0) + n);
            onBytes(batch[i]!, n);
          }),
          duplex: 'half',
          ...(signal ? { signal } : {}),
        } as RequestInit);
        if (res.ok) {
          const result = (await res.json()) as UploadResult;
          if (!Array.isArray(result.files) || result.files.length !== batch.length) {
            throw new UploadClientError(
              'BAD_RESPONSE',
              `POST /uploads answered ${result.files?.length ?? 0} files for ${batch.length}`,
            );
          }
          return result.files;
        }
        retryAfter = res.headers.get('retry-after');
        error = await responseError(res, 'POST /uploads');
      } catch (err) {
        error = err instanceof UploadClientError ? err : fetchFailure(err, signal, 'POST /uploads');
      }
      // The request failed as a whole (the service stores all of it or nothing): undo progress.
      for (const [i, n] of sent) onBytes(batch[i]!, -n);
      if (signal?.aborted) throw abortError(signal);
      if (!error.retryable || attempt >= policy.retries) throw error;
      await sleep(backoffMs(attempt, policy, retryAfter), signal);
    }
  }

  return {
    async upload(files, uploadOptions = {}) {
      const { signal, onProgress } = uploadOptions;
      if (signal?.aborted) throw abortError(signal);
      const prepared = await prepare(files);
      const totalSize = prepared.reduce((n, f) => n + f.size, 0);
      const sentPerFile = prepared.map(() => 0);
      let totalBytes = 0;
      const report = (f: Prepared, lane: Lane, bytes: number) => {
        totalBytes += bytes - sentPerFile[f.index]!;
        sentPerFile[f.index] = bytes;
        onProgress?.({ index: f.index, path: f.path, name: f.name, lane, bytes, size: f.size, totalBytes, totalSize });
      };
      const results: UploadedFile[] = new Array<UploadedFile>(prepared.length);
      const small = prepared.filter((f) => f.size <= streamMaxBytes);
      const large = prepared.filter((f) => f.size > streamMaxBytes);

      const fields = Object.entries(uploadOptions.fields ?? {});
      for (const [name, value] of fields) {
        if (typeof value !== 'string')
          throw new UploadClientError('INVALID_OPTIONS', `Field ${JSON.stringify(name)} must be a string`);
      }
      for (const batch of batches(small)) {
        for (const f of batch) {
          // A stream is read into memory here (at most streamMaxBytes), so that a retry, its
          // checksum and the SigV4 payload hash all see the same bytes.
          f.source = await bufferSource(f.source);
          if (uploadOptions.sha256 !== false) f.sha256 ??= await sourceSha256(f.source, signal);
        }
        const stored = await postStreamed(batch, fields, signal, (f, n) => report(f, 'stream', sentPerFile[f.index]! + n));
        stored.forEach((file, i) => {
          const f = batch[i]!;
          results[f.index] = { ...file, path: f.path, lane: 'stream' };
        });
      }

      const failures: UploadClientError[] = [];
      for (const f of large) {
        const ctx = {
          baseUrl,
          fetch: fetchFn,
          headers,
          sign,
          policy,
          partConcurrency,
          signal,
          resumable: uploadOptions.resumable ?? false,
          keepOnAbort: uploadOptions.keepSessionsOnAbort ?? false,
          onBytes: (bytes: number) => report(f, 'direct', bytes),
          ...(uploadOptions.onSession ? { onSession: uploadOptions.onSession } : {}),
          ...(uploadOptions.onPartPut ? { onPartPut: (n: number) => uploadOptions.onPartPut!(n, f.label) } : {}),
        };
        // Only a file on disk can be resumed: bytes and streams are not there in a later run.
        const saved = f.path !== undefined ? findResumable(uploadOptions.resume, { ...f, path: f.path }) : undefined;
        const direct: DirectFile = { ...f, ...(uploadOptions.fields ? { fields: uploadOptions.fields } : {}) };
        try {
          let stored: StoredFile | undefined;
          if (saved) {
            try {
              stored = await uploadDirect(direct, ctx, saved);
            } catch (err) {
              // A session the service no longer knows (expired, aborted): start a new one.
              const stale =
                err instanceof UploadClientError && (err.code === 'INVALID_SESSION' || err.code === 'SESSION_EXPIRED');
              if (!stale) throw err;
            }
          }
          if (!stored) {
            // A stream cannot be read twice: it goes without a declared SHA-256 unless given one.
            if (!direct.sha256 && uploadOptions.sha256 !== false && f.source.rereadable) {
              direct.sha256 = await sourceSha256(f.source, signal);
            }
            stored = await uploadDirect(direct, ctx);
          }
          results[f.index] = { ...stored, path: f.path, lane: 'direct' };
        } catch (err) {
          const error = err instanceof UploadClientError ? err : fetchFailure(err, signal, `Uploading ${f.label}`);
          if (error.kind === 'aborted' || !uploadOptions.resumable) throw error;
          failures.push(error);
        }
      }
      if (failures.length) {
        // Resumable mode goes through every file, then reports the first failure with every
        // session that can be resumed.
        const first = failures[0]!;
        first.sessions = failures.flatMap((e) => e.sessions);
        throw first;
      }
      return results;
    },
  };
}
