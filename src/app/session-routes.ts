/**
 * The upload-session routes (direct-to-S3 lane): JSON in, JSON out. No file byte passes here.
 */
import type { Readable } from 'node:stream';
import { toUploadError, UploadError } from '../core/errors.ts';
import type { SessionCaller, SessionService } from '../core/sessions.ts';
import { errorResponse, jsonResponse, type ResponseHead } from './render.ts';
import type { SessionRoute } from './routes.ts';

/**
 * Largest JSON body taken, bytes: a complete of 10,000 parts with quoted ETags is about
 * 600 KB. Well inside Lambda's 6 MB payload.
 */
export const MAX_SESSION_BODY_BYTES = 1024 * 1024;

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
  caller: SessionCaller = {},
): Promise<SessionResponse & { outcome: string; error?: UploadError }> {
  try {
    if (!service) {
      // Without a configured secret there is nothing to sign sessions with.
      throw new UploadError('NOT_FOUND', 'Upload sessions are not enabled on this deployment (UPLOAD_SESSION_SECRET is not set)');
    }
    const readBody = () => readJson(body);
    switch (route.action) {
      case 'create':
        return { ...jsonResponse(201, await service.create(readBody, caller)), outcome: 'created' };
      case 'parts':
        return { ...jsonResponse(200, await service.signParts(route.id, readBody, caller)), outcome: 'signed' };
      case 'complete': {
        const { status, result } = await service.complete(route.id, readBody, caller);
        return { ...jsonResponse(status, result), outcome: status === 201 ? 'completed' : 'already-completed' };
      }
      case 'abort':
        await service.abort(route.id, caller);
        return { head: { statusCode: 204, headers: { 'cache-control': 'no-store' } }, body: '', outcome: 'aborted' };
    }
  } catch (err) {
    const error = toUploadError(err);
    return { ...errorResponse(error), outcome: error.code, error };
  }
}
