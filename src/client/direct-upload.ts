/**
 * The direct lane: one upload session per file, parts read from disk into a fixed pool of
 * `partConcurrency` buffers and PUT straight to S3 with presigned URLs, in parallel, each with
 * its own retries; then `complete`. Memory is partSize x partConcurrency whatever the file.
 *
 * Interruptions: a cancel (the caller's signal) aborts the session, unless both `resumable`
 * and `keepOnAbort` are set. Any other failure aborts it too, unless `resumable` is set: then the session stays open and the error carries its
 * state (parts done and their ETags), which `upload(files, { resume })` takes to send only
 * the missing parts.
 */
import { createHash } from 'node:crypto';
import type { SignPartsResult, StoredFile, UploadResult, UploadSession } from '../protocol.ts';
import { SESSIONS_PATH } from '../protocol.ts';
import { UploadClientError } from './errors.ts';
import { abortError, backoffMs, callJson, fetchFailure, responseError, sleep, type FetchLike, type RetryPolicy } from './http.ts';
import type { SessionState } from './session-state.ts';
import { readFully, type ByteSource, type SourceReader } from './sources.ts';
import type { SignRequest } from './sigv4.ts';

export interface DirectFile {
  source: ByteSource;
  /** Set for a file on disk: what a saved session is matched with. */
  path?: string;
  name: string;
  contentType: string;
  size: number;
  mtimeMs: number;
  sha256?: string;
  /** Caller metadata for the session's `fields`. */
  fields?: Record<string, string>;
}

export interface DirectContext {
  baseUrl: string;
  fetch: FetchLike;
  headers: Record<string, string>;
  /** SigV4 signer of the calls to the service (never of the PUTs to S3). */
  sign?: SignRequest | undefined;
  policy: RetryPolicy;
  partConcurrency: number;
  signal: AbortSignal | undefined;
  resumable: boolean;
  /** With `resumable`, a cancel keeps the session open too (the CLI's Ctrl-C with --state). */
  keepOnAbort?: boolean;
  /** Bytes of this file acknowledged so far (may go down when a part is retried). */
  onBytes(bytes: number): void;
  onSession?: (state: SessionState) => void;
  /** Counts every part PUT attempt (tests count re-sent parts with it). */
  onPartPut?: (partNumber: number) => void;
}

/** Slice size of a part body as it is handed to fetch (progress granularity). */
const SLICE = 256 * 1024;
/** URLs asked for per /parts call. The service may answer fewer (its batch size). */
const URL_BATCH = 100;

export async function uploadDirect(file: DirectFile, ctx: DirectContext, resume?: SessionState): Promise<StoredFile> {
  const { policy, signal } = ctx;
  const sessionUrl = (suffix = '') => `${ctx.baseUrl}${SESSIONS_PATH}${suffix}`;
  const urls = new Map<number, string>();

  let state: SessionState;
  if (resume) {
    state = { ...resume, parts: [...resume.parts] };
  } else {
    const { body } = await callJson<UploadSession>(ctx.fetch, policy, {
      method: 'POST',
      url: sessionUrl(),
      body: {
        filename: file.name,
        size: file.size,
        contentType: file.contentType,
        ...(file.sha256 ? { sha256: file.sha256 } : {}),
        ...(file.fields && Object.keys(file.fields).length ? { fields: file.fields } : {}),
      },
      headers: ctx.headers,
      sign: ctx.sign,
      signal,
      what: 'Creating the upload session',
    });
    for (const p of body.parts) urls.set(p.partNumber, p.url);
    state = {
      sessionId: body.sessionId,
      path: file.path ?? file.name,
      size: file.size,
      mtimeMs: file.mtimeMs,
      key: body.key,
      partSize: body.partSize,
      partCount: body.partCount,
      expiresAt: body.expiresAt,
      parts: [],
    };
  }
  ctx.onSession?.(structuredClone(state));
  const id = encodeURIComponent(state.sessionId);

  const abortSession = async () => {
    await callJson(
      ctx.fetch,
      { retries: 1, baseMs: 200 },
      {
        method: 'DELETE',
        url: sessionUrl(`/${id}`),
        headers: ctx.headers,
        sign: ctx.sign,
        signal: AbortSignal.timeout(10_000),
        what: 'Aborting the upload session',
      },
    ).catch(() => {});
  };

  try {
    await sendParts(file, state, urls, ctx, sessionUrl(`/${id}/parts`));
    const parts = [...state.parts].sort((a, b) => a.partNumber - b.partNumber);
    const { body } = await callJson<UploadResult>(ctx.fetch, policy, {
      method: 'POST',
      url: sessionUrl(`/${id}/complete`),
      body: { parts },
      headers: ctx.headers,
      sign: ctx.sign,
      signal,
      what: 'Completing the upload',
    });
    const stored = body.files?.[0];
    if (!stored) throw new UploadClientError('BAD_RESPONSE', 'Completing the upload: the answer names no file');
    return stored;
  } catch (err) {
    const error = err instanceof UploadClientError ? err : fetchFailure(err, signal, 'The upload');
    // A refused complete already ended the session on the service's side; a cancel or a
    // non-resumable failure ends it here. A resumable failure keeps it for later.
    const ended = error.code === 'INVALID_SESSION' || error.code === 'SESSION_EXPIRED' || error.status === 422;
    const keep = ctx.resumable && (error.kind !== 'aborted' || ctx.keepOnAbort === true);
    if (!keep) {
      if (!ended) await abortSession();
    } else if (!ended) {
      error.sessions.push(structuredClone(state));
    }
    throw error;
  }
}

/** PUTs every part not in `state.parts`, `partConcurrency` at a time. */
async function sendParts(
  file: DirectFile,
  state: SessionState,
  urls: Map<number, string>,
  ctx: DirectContext,
  partsUrl: string,
): Promise<void> {
  const done = new Set(state.parts.map((p) => p.partNumber));
  const pending: number[] = [];
  for (let n = 1; n <= state.partCount; n++) if (!done.has(n)) pending.push(n);
  let acked = state.parts.reduce((sum, p) => sum + partLength(p.partNumber, state), 0);
  ctx.onBytes(acked);
  if (pending.length === 0) return;

  // A cancel cuts the parts in flight. A failure only stops new parts from starting: those in
  // flight finish (with their retries), so a resumed upload does not send them again.
  const stop = new AbortController();
  let firstError: unknown;
  const onOuterAbort = () => stop.abort(abortError(ctx.signal));
  if (ctx.signal?.aborted) onOuterAbort();
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });

  let handle: SourceReader | undefined;
  let refill: Promise<void> | undefined;
  const queue = [...pending];

  /** Presigned URL of a part: from the batch at hand, else a new batch from the service. */
  const urlFor = async (n: number): Promise<string> => {
    for (;;) {
      const url = urls.get(n);
      if (url) return url;
      refill ??= (async () => {
        const want = [n, ...queue.filter((q) => !urls.has(q) && q !== n)].slice(0, URL_BATCH);
        const { body } = await callJson<SignPartsResult>(ctx.fetch, ctx.policy, {
          method: 'POST',
          url: partsUrl,
          body: { partNumbers: want },
          headers: ctx.headers,
          sign: ctx.sign,
          signal: stop.signal,
          what: 'Signing part URLs',
        });
        for (const p of body.parts) urls.set(p.partNumber, p.url);
        if (!body.parts.some((p) => p.partNumber === n)) {
          throw new UploadClientError('BAD_RESPONSE', `Signing part URLs: no URL for part ${n}`);
        }
      })().finally(() => {
        refill = undefined;
      });
      await refill;
    }
  };

  const worker = async () => {
    let buffer: Buffer | undefined;
    for (let n = queue.shift(); n !== undefined && !stop.signal.aborted && firstError === undefined; n = queue.shift()) {
      const length = partLength(n, state);
      buffer ??= Buffer.allocUnsafe(state.partSize);
      const part = buffer.subarray(0, length);
      await readFully(handle!, part, (n - 1) * state.partSize, file.path ?? file.name);
      const md5 = createHash('md5').update(part).digest('base64');
      let sent = 0;
      const etag = await putPart(
        n,
        part,
        md5,
        ctx,
        stop.signal,
        urls,
        urlFor,
        (bytes) => {
          sent += bytes;
          acked += bytes;
          ctx.onBytes(acked);
        },
        () => {
          acked -= sent;
          sent = 0;
          ctx.onBytes(acked);
        },
      );
      state.parts.push({ partNumber: n, etag });
      ctx.onSession?.(structuredClone(state));
    }
  };

  try {
    await file.source.checkUnchanged?.();
    handle = await file.source.open();
    const workers = Array.from({ length: Math.min(ctx.partConcurrency, pending.length) }, () =>
      worker().catch((err: unknown) => {
        firstError ??= err;
      }),
    );
    await Promise.all(workers);
    if (stop.signal.aborted) throw abortError(ctx.signal);
    if (firstError !== undefined) {
      throw firstError instanceof UploadClientError ? firstError : fetchFailure(firstError, ctx.signal, 'A part upload');
    }
    await file.source.checkUnchanged?.();
  } finally {
    ctx.signal?.removeEventListener('abort', onOuterAbort);
    await handle?.close();
  }
}

function partLength(n: number, state: Pick<SessionState, 'size' | 'partSize' | 'partCount'>): number {
  return n < state.partCount ? state.partSize : state.size - (state.partCount - 1) * state.partSize;
}

/**
 * PUTs one part with retries; resolves with its ETag. A 403 usually means the URL expired
 * (or the clock moved): a fresh URL is fetched once before giving up.
 */
async function putPart(
  n: number,
  part: Buffer,
  md5: string,
  ctx: DirectContext,
  signal: AbortSignal,
  urls: Map<number, string>,
  urlFor: (n: number) => Promise<string>,
  onBytes: (bytes: number) => void,
  onReset: () => void,
): Promise<string> {
  let refreshed = false;
  for (let attempt = 0; ; attempt++) {
    const url = await urlFor(n);
    ctx.onPartPut?.(n);
    let error: UploadClientError;
    let retryAfter: string | null = null;
    try {
      const res = await ctx.fetch(url, {
        method: 'PUT',
        // Content-MD5: S3 checks the bytes it got against it (BadDigest otherwise).
        headers: { 'content-length': String(part.length), 'content-md5': md5 },
        body: sliced(part, onBytes),
        duplex: 'half',
        signal,
      } as RequestInit);
      if (res.ok) {
        await res.arrayBuffer().catch(() => undefined);
        const etag = res.headers.get('etag');
        if (!etag) {
          throw new UploadClientError('BAD_RESPONSE', `S3 answered part ${n} without an ETag (CORS must expose it)`);
        }
        return etag;
      }
      retryAfter = res.headers.get('retry-after');
      const refused = await responseError(res, `Uploading part ${n}`);
      error = new UploadClientError('PART_UPLOAD_FAILED', refused.message, { status: res.status });
      if (res.status === 403 && !refreshed) {
        refreshed = true;
        urls.delete(n);
        onReset();
        continue;
      }
    } catch (err) {
      if (err instanceof UploadClientError && err.code === 'BAD_RESPONSE') throw err;
      error = fetchFailure(err, signal, `Uploading part ${n}`);
    }
    onReset();
    if (signal.aborted) throw signal.reason instanceof UploadClientError ? signal.reason : error;
    if (!error.retryable || attempt >= ctx.policy.retries) throw error;
    await sleep(backoffMs(attempt, ctx.policy, retryAfter), signal);
  }
}

/** The part as a stream of slices, so progress follows the bytes fetch really takes. */
function sliced(part: Buffer, onBytes: (bytes: number) => void): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= part.length) {
        controller.close();
        return;
      }
      const slice = part.subarray(offset, Math.min(offset + SLICE, part.length));
      offset += slice.length;
      onBytes(slice.length);
      controller.enqueue(slice);
    },
  });
}
