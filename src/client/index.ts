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
 * Memory stays fixed: files are read from disk as they are sent, never whole.
 *
 * @example
 * const client = createUploadClient({ url: 'https://uploads.internal', token: process.env.TOKEN });
 * const files = await client.upload(['report.pdf', { path: 'video.mp4', contentType: 'video/mp4' }], {
 *   onProgress: (p) => console.log(p.totalBytes, '/', p.totalSize),
 * });
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { StoredFile, UploadResult } from '../protocol.ts';
import { uploadDirect, type DirectFile } from './direct-upload.ts';
import { UploadClientError } from './errors.ts';
import { abortError, backoffMs, fetchFailure, responseError, sleep, type FetchLike } from './http.ts';
import { multipartBody } from './multipart-body.ts';
import { findResumable, type SessionState } from './session-state.ts';

export { UploadClientError, type ClientErrorCode } from './errors.ts';
export type { SessionState } from './session-state.ts';
export type { FetchLike } from './http.ts';

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

export type FileInput = string | { path: string; name?: string; contentType?: string; sha256?: string };

export type Lane = 'stream' | 'direct';

export interface Progress {
  /** Index of the file in the list given to upload(). */
  index: number;
  path: string;
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
  /** Called as bytes go out (at most every 256 KiB per part or 64 KiB of a streamed body). */
  onProgress?: (progress: Progress) => void;
  /**
   * Keep the session of a direct upload that failed (other than by cancel) open and put its
   * state on the error (`error.sessions`) for `resume`. Default false: failures abort.
   */
  resumable?: boolean;
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
  /** Called for every part PUT attempt (tests and diagnostics). */
  onPartPut?: (partNumber: number, path: string) => void;
}

/** A stored file as the service answered, plus where it came from. */
export interface UploadedFile extends StoredFile {
  path: string;
  lane: Lane;
}

export interface UploadClient {
  /** Uploads the files; resolves with one entry per file, in the order given. */
  upload(files: readonly FileInput[], options?: UploadOptions): Promise<UploadedFile[]>;
}

interface Prepared {
  index: number;
  path: string;
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

/** SHA-256 of a file, read through one reused 1 MiB buffer (no garbage for the GC to chase). */
async function fileSha256(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(MiB);
  const handle = await open(path, 'r');
  try {
    for (let position = 0; ;) {
      if (signal?.aborted) throw abortError(signal);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

export function createUploadClient(options: UploadClientOptions): UploadClient {
  const baseUrl = options.url.replace(/\/+$/, '');
  const fetchFn: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  const policy = { retries: options.retries ?? 4, baseMs: options.retryBaseMs ?? 250 };
  const partConcurrency = Math.max(1, options.partConcurrency ?? 4);
  const streamMaxBytes = options.streamMaxBytes ?? 4 * MiB;
  const maxFilesPerRequest = Math.max(1, options.maxFilesPerRequest ?? 10);

  async function prepare(files: readonly FileInput[]): Promise<Prepared[]> {
    return Promise.all(
      files.map(async (input, index) => {
        const spec = typeof input === 'string' ? { path: input } : input;
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
        const name = spec.name ?? basename(path);
        return {
          index,
          path,
          name,
          contentType: spec.contentType ?? guessContentType(name),
          size: info.size,
          mtimeMs: info.mtimeMs,
          ...(spec.sha256 ? { sha256: spec.sha256 } : {}),
        };
      }),
    );
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

  async function postStreamed(batch: Prepared[], signal: AbortSignal | undefined, onBytes: (f: Prepared, n: number) => void) {
    const body = multipartBody(
      batch.map((f) => ({
        path: f.path,
        name: f.name,
        contentType: f.contentType,
        size: f.size,
        field: 'file',
        ...(f.sha256 ? { sha256: f.sha256 } : {}),
      })),
    );
    for (let attempt = 0; ; attempt++) {
      const sent = new Map<number, number>();
      let error: UploadClientError;
      let retryAfter: string | null = null;
      try {
        const res = await fetchFn(`${baseUrl}/uploads`, {
          method: 'POST',
          headers: {
            ...headers,
            accept: 'application/json',
            'content-type': body.contentType,
            'content-length': String(body.length),
          },
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
        onProgress?.({ index: f.index, path: f.path, lane, bytes, size: f.size, totalBytes, totalSize });
      };
      const results: UploadedFile[] = new Array<UploadedFile>(prepared.length);
      const small = prepared.filter((f) => f.size <= streamMaxBytes);
      const large = prepared.filter((f) => f.size > streamMaxBytes);

      for (const batch of batches(small)) {
        if (uploadOptions.sha256 !== false) {
          for (const f of batch) f.sha256 ??= await fileSha256(f.path, signal);
        }
        const stored = await postStreamed(batch, signal, (f, n) => report(f, 'stream', sentPerFile[f.index]! + n));
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
          policy,
          partConcurrency,
          signal,
          resumable: uploadOptions.resumable ?? false,
          onBytes: (bytes: number) => report(f, 'direct', bytes),
          ...(uploadOptions.onSession ? { onSession: uploadOptions.onSession } : {}),
          ...(uploadOptions.onPartPut ? { onPartPut: (n: number) => uploadOptions.onPartPut!(n, f.path) } : {}),
        };
        const saved = findResumable(uploadOptions.resume, f);
        const direct: DirectFile = { ...f };
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
            if (!direct.sha256 && uploadOptions.sha256 !== false) direct.sha256 = await fileSha256(f.path, signal);
            stored = await uploadDirect(direct, ctx);
          }
          results[f.index] = { ...stored, path: f.path, lane: 'direct' };
        } catch (err) {
          const error = err instanceof UploadClientError ? err : fetchFailure(err, signal, `Uploading ${f.path}`);
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
