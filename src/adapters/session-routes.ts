/**
 * The upload-session routes (direct-to-S3 lane), shared by the Node server and the Lambda
 * function: JSON in, JSON out, the same answers on both.
 *
 *   POST   /uploads/sessions                 create     201 UploadSession
 *   POST   /uploads/sessions/{id}/parts      sign more  200 SignPartsResult
 *   POST   /uploads/sessions/{id}/complete   complete   201 (200 when already completed)
 *   DELETE /uploads/sessions/{id}            abort      204
 */
import type { Readable } from 'node:stream';
import { toUploadError, UploadError } from '../core/errors.ts';
import type { SessionService } from '../core/sessions.ts';
import { SESSIONS_PATH } from '../protocol.ts';
import { errorResponse, jsonResponse, type ResponseHead } from './respond.ts';

export type SessionAction = 'create' | 'parts' | 'complete' | 'abort';

export interface SessionRoute {
  kind: 'session';
  action: SessionAction;
  /** The session id from the path ('' for create). */
  id: string;
}

type RouteError = { kind: 'error'; error: UploadError; headers: Record<string, string> };

/**
 * Largest JSON body taken, bytes: a complete of 10,000 parts with quoted ETags is about
 * 600 KB. Well inside Lambda's 6 MB payload.
 */
export const MAX_SESSION_BODY_BYTES = 1024 * 1024;

const ID = '([A-Za-z0-9_.-]{1,8192})';
const PATTERNS: Array<[RegExp, SessionAction, string]> = [
  [new RegExp(`^${SESSIONS_PATH}$`), 'create', 'POST'],
  [new RegExp(`^${SESSIONS_PATH}/${ID}/parts$`), 'parts', 'POST'],
  [new RegExp(`^${SESSIONS_PATH}/${ID}/complete$`), 'complete', 'POST'],
  [new RegExp(`^${SESSIONS_PATH}/${ID}$`), 'abort', 'DELETE'],
];

/** The session route for a request, a 405 for a known path with the wrong method, else undefined. */
export function matchSessionRoute(method: string, path: string): SessionRoute | RouteError | undefined {
  for (const [pattern, action, allowed] of PATTERNS) {
    const m = pattern.exec(path);
    if (!m) continue;
    if (method.toUpperCase() !== allowed) {
      return {
        kind: 'error',
        error: new UploadError('METHOD_NOT_ALLOWED', `Use ${allowed} on ${path}`),
        headers: { allow: allowed },
      };
    }
    return { kind: 'session', action, id: m[1] ?? '' };
  }
  return undefined;
}

export interface SessionResponse {
  head: ResponseHead;
  /** '' for 204. */
  body: string;
}

/** Reads a JSON body of at most MAX_SESSION_BODY_BYTES. */
async function readJson(body: Readable): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_SESSION_BODY_BYTES) {
      throw new UploadError('PAYLOAD_TOO_LARGE', `Session requests take at most ${MAX_SESSION_BODY_BYTES} bytes of JSON`);
    }
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UploadError('BAD_REQUEST', 'The body must be JSON', { cause: err });
  }
}

/**
 * Runs one session route. Never throws: failures become the error response. The outcome code
 * ('created', 'completed', ... or the error code) is returned for the adapter's log line.
 */
export async function handleSessionRoute(
  route: SessionRoute,
  body: Readable,
  service: SessionService | undefined,
): Promise<SessionResponse & { outcome: string; error?: UploadError }> {
  try {
    if (!service) {
      // Without a configured secret there is nothing to sign sessions with.
      throw new UploadError('NOT_FOUND', 'Upload sessions are not enabled on this deployment (UPLOAD_SESSION_SECRET is not set)');
    }
    const readBody = () => readJson(body);
    switch (route.action) {
      case 'create':
        return { ...jsonResponse(201, await service.create(readBody)), outcome: 'created' };
      case 'parts':
        return { ...jsonResponse(200, await service.signParts(route.id, readBody)), outcome: 'signed' };
      case 'complete': {
        const { status, result } = await service.complete(route.id, readBody);
        return { ...jsonResponse(status, result), outcome: status === 201 ? 'completed' : 'already-completed' };
      }
      case 'abort':
        await service.abort(route.id);
        return { head: { statusCode: 204, headers: { 'cache-control': 'no-store' } }, body: '', outcome: 'aborted' };
    }
  } catch (err) {
    const error = toUploadError(err);
    return { ...errorResponse(error), outcome: error.code, error };
  }
}
