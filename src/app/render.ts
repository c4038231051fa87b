/**
 * Turns core events into an HTTP response, the same way for every adapter: JSON by default
 * (status known at the end: 201 or the error's status), NDJSON on
 * `Accept: application/x-ndjson` (status fixed at the first byte; a later failure is a final
 * `{"type":"error",...}` line, never free text).
 */
import { errorPayload, type UploadError } from '../core/errors.ts';
import { BUSY_RETRY_AFTER_SECONDS } from '../core/memory-budget.ts';
import { ERROR_STATUS, JSON_CONTENT_TYPE, NDJSON_CONTENT_TYPE, type ErrorBody, type UploadEvent } from '../protocol.ts';

export type ResponseMode = 'json' | 'ndjson';

export interface ResponseHead {
  statusCode: number;
  headers: Record<string, string>;
}

/** One piece of a rendered response: the head comes first, exactly once. */
export type ResponsePiece = { head: ResponseHead } | { chunk: string };

/** NDJSON when the caller asks for it in Accept, else JSON. */
export function responseMode(accept: string | undefined): ResponseMode {
  return accept !== undefined && accept.toLowerCase().includes(NDJSON_CONTENT_TYPE) ? 'ndjson' : 'json';
}

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}) {
  return {
    head: { statusCode, headers: { 'content-type': JSON_CONTENT_TYPE, 'cache-control': 'no-store', ...headers } },
    body: JSON.stringify(body),
  };
}

export function errorResponse(err: UploadError, headers: Record<string, string> = {}) {
  const body: ErrorBody = { error: errorPayload(err) };
  return jsonResponse(err.status, body, headers);
}

/** Seconds a caller is told to wait when the server is shutting down: another instance takes it. */
export const SHUTTING_DOWN_RETRY_AFTER_SECONDS = 1;

/** `Retry-After` for the codes that mean "this instance, not now". */
export function retryAfterHeaders(code: UploadError['code']): Record<string, string> {
  if (code === 'BUSY') return { 'retry-after': String(BUSY_RETRY_AFTER_SECONDS) };
  if (code === 'SHUTTING_DOWN') return { 'retry-after': String(SHUTTING_DOWN_RETRY_AFTER_SECONDS) };
  return {};
}

/** Status and `{ error }` body of a terminal error event (with Retry-After for BUSY, SHUTTING_DOWN). */
function errorEventResponse(event: Extract<UploadEvent, { type: 'error' }>) {
  const { type: _type, ...error } = event;
  return jsonResponse(ERROR_STATUS[event.code], { error } satisfies ErrorBody, retryAfterHeaders(event.code));
}

/**
 * Renders the upload's events as response pieces: `{ head }` first, then body chunks.
 * `observe` sees every event (adapters log and count the outcome with it).
 */
export async function* renderUpload(
  source: AsyncIterable<UploadEvent>,
  mode: ResponseMode,
  observe: (event: UploadEvent) => void = () => {},
): AsyncGenerator<ResponsePiece> {
  if (mode === 'json') {
    for await (const event of source) {
      observe(event);
      if (event.type === 'done') {
        const { files, fields } = event;
        const res = jsonResponse(201, { files, fields });
        yield { head: res.head };
        yield { chunk: res.body };
        return;
      }
      if (event.type === 'error') {
        const res = errorEventResponse(event);
        yield { head: res.head };
        yield { chunk: res.body };
        return;
      }
    }
    return;
  }
  let started = false;
  for await (const event of source) {
    observe(event);
    if (!started) {
      started = true;
      if (event.type === 'error') {
        // Nothing was sent yet, so the real status can still be given.
        const res = errorEventResponse(event);
        yield { head: res.head };
        yield { chunk: res.body };
        return;
      }
      yield {
        head: {
          statusCode: 200,
          headers: { 'content-type': NDJSON_CONTENT_TYPE, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' },
        },
      };
    }
    yield { chunk: JSON.stringify(event) + '\n' };
  }
}
