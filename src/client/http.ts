/**
 * The client's HTTP plumbing: JSON calls to the service with retries and backoff, and the
 * translation of every failure (network, error body, abort) into an UploadClientError.
 */
import type { ErrorBody, ErrorCode } from '../protocol.ts';
import { UploadClientError } from './errors.ts';
import { EMPTY_SHA256, sha256Hex, type SignRequest } from './sigv4.ts';

export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface RetryPolicy {
  /** Attempts after the first one. */
  retries: number;
  /** First backoff, ms; doubles per attempt (with ±50 % jitter), capped at 10 s. */
  baseMs: number;
}

export function abortError(signal: AbortSignal | undefined): UploadClientError {
  const reason: unknown = signal?.reason;
  if (reason instanceof UploadClientError) return reason;
  return new UploadClientError('ABORTED', 'The upload was cancelled', { cause: reason });
}

/** Any failure of a fetch call as an UploadClientError. */
export function fetchFailure(err: unknown, signal: AbortSignal | undefined, what: string): UploadClientError {
  if (err instanceof UploadClientError) return err;
  if (signal?.aborted) return abortError(signal);
  // A failure of the body stream (a file that cannot be read) surfaces as fetch's cause.
  if (err instanceof Error && err.cause instanceof UploadClientError) return err.cause;
  const detail = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
  return new UploadClientError('NETWORK', `${what} failed: ${detail}`, { cause: err });
}

/** The error a non-2xx answer of the service stands for (its `{ error: { code, message } }`). */
export async function responseError(res: Response, what: string): Promise<UploadClientError> {
  const text = await res.text().catch(() => '');
  let body: Partial<ErrorBody> | undefined;
  try {
    body = JSON.parse(text) as Partial<ErrorBody>;
  } catch {
    body = undefined;
  }
  const code = body?.error?.code;
  if (typeof code === 'string') {
    return new UploadClientError(code as ErrorCode, `${what}: ${body?.error?.message ?? code}`, { status: res.status });
  }
  const fallback: ErrorCode = res.status >= 500 ? 'INTERNAL' : 'BAD_REQUEST';
  return new UploadClientError(fallback, `${what}: HTTP ${res.status}${text ? ` ${text.slice(0, 200)}` : ''}`, {
    status: res.status,
  });
}

/** Waits `ms`, or rejects when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function backoffMs(attempt: number, policy: RetryPolicy, retryAfter?: string | null): number {
  const seconds = retryAfter ? Number(retryAfter) : NaN;
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 30_000);
  const base = Math.min(policy.baseMs * 2 ** attempt, 10_000);
  return Math.round(base * (0.5 + Math.random()));
}

/**
 * Runs `attempt` until it succeeds, fails with a non-retryable error, or runs out of retries.
 * `attempt` throws UploadClientErrors (with `retryAfter` read from the last answer).
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  signal: AbortSignal | undefined,
  attempt: (n: number) => Promise<T>,
  onRetry?: (err: UploadClientError, n: number) => void,
): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      const error = err instanceof UploadClientError ? err : fetchFailure(err, signal, 'Request');
      if (signal?.aborted) throw abortError(signal);
      if (!error.retryable || n >= policy.retries) throw error;
      onRetry?.(error, n);
      await sleep(backoffMs(n, policy, (error as { retryAfter?: string }).retryAfter), signal);
    }
  }
}

export interface JsonCall {
  method: 'POST' | 'DELETE';
  url: string;
  body?: unknown;
  headers: Record<string, string>;
  signal?: AbortSignal;
  /** What the call does, for messages ("Creating the upload session"). */
  what: string;
  /** SigV4 signer of calls to the service (re-signed on every attempt). */
  sign?: SignRequest | undefined;
}

/** One JSON call to the service with retries; resolves with the parsed answer and status. */
export async function callJson<T>(fetchFn: FetchLike, policy: RetryPolicy, call: JsonCall): Promise<{ status: number; body: T }> {
  return withRetries(policy, call.signal, async () => {
    let res: Response;
    try {
      const body = call.body !== undefined ? JSON.stringify(call.body) : undefined;
      let headers: Record<string, string> = {
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...call.headers,
      };
      if (call.sign) {
        headers = await call.sign({
          method: call.method,
          url: call.url,
          headers,
          payloadHash: body !== undefined ? sha256Hex(body) : EMPTY_SHA256,
        });
      }
      res = await fetchFn(call.url, {
        method: call.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(call.signal ? { signal: call.signal } : {}),
      });
    } catch (err) {
      throw fetchFailure(err, call.signal, call.what);
    }
    if (!res.ok) {
      const error = await responseError(res, call.what);
      Object.assign(error, { retryAfter: res.headers.get('retry-after') });
      throw error;
    }
    if (res.status === 204) return { status: 204, body: undefined as T };
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) as T };
    } catch (err) {
      throw new UploadClientError('BAD_RESPONSE', `${call.what}: the answer is not JSON`, { status: res.status, cause: err });
    }
  });
}
