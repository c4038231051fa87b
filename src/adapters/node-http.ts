/**
 * node:http adapter: routes, then hands `{ headers, body: req, signal }` to the core and
 * writes the rendered events with backpressure. Request bodies really stream here (unlike
 * behind API Gateway or a Function URL), so there is no size bound but the configured limits.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UploadError } from '../core/errors.ts';
import { uploadFiles, type UploadDeps } from '../core/upload-files.ts';
import type { Logger } from '../logger.ts';
import { errorResponse, jsonResponse, renderUpload, responseMode, type ResponseHead } from './respond.ts';
import { createBearerCheck } from './auth.ts';
import { matchRoute } from './routes.ts';
import { handleSessionRoute, type SessionRoute } from './session-routes.ts';
import type { SessionService } from '../core/sessions.ts';

export interface NodeAdapterOptions {
  upload: UploadDeps;
  logger: Logger;
  /** Required bearer token (every route but /healthz); undefined for open access. */
  authToken?: string;
  /** Upload sessions (direct-to-S3 lane); without it the session routes answer 404. */
  sessions?: SessionService;
  /**
   * After a failed upload the rest of the body is read and dropped so the client sees the
   * response instead of a reset; past this many bytes the connection is closed instead.
   * Default 16 MiB.
   */
  maxDrainBytes?: number;
}

export function createRequestListener(options: NodeAdapterOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const maxDrainBytes = options.maxDrainBytes ?? 16 * 1024 * 1024;
  const checkAuth = createBearerCheck(options.authToken);

  return (req, res) => {
    const requestId = headerOf(req, 'x-request-id') ?? randomUUID();
    const logger = options.logger.child({ requestId, correlationId: headerOf(req, 'x-correlation-id') ?? requestId });
    const path = (req.url ?? '/').split('?', 1)[0]!;
    res.setHeader('x-request-id', requestId);

    const route = matchRoute(req.method ?? 'GET', path);
    const denied = route.kind === 'health' ? undefined : checkAuth(headerOf(req, 'authorization'));
    let work: Promise<void>;
    if (denied) {
      // Say no before reading the body; the connection closes so an unread body cannot pile up.
      res.setHeader('connection', 'close');
      work = sendJson(res, errorResponse(denied, { 'www-authenticate': 'Bearer' }));
    } else if (route.kind === 'upload') work = handleUpload(req, res, logger);
    else if (route.kind === 'health') work = sendJson(res, jsonResponse(200, { status: 'ok' }));
    else if (route.kind === 'session') work = handleSession(route, req, res, logger);
    else work = sendJson(res, errorResponse(route.error, route.headers));

    work.catch((err: unknown) => {
      // Last resort: the pipeline never throws, so this is a bug or a dead socket.
      logger.error('request failed', { err });
      if (!res.headersSent) void sendJson(res, errorResponse(new UploadError('INTERNAL', 'Internal error')));
      else res.destroy();
    });
  };

  async function handleSession(route: SessionRoute, req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<void> {
    const started = Date.now();
    const response = await handleSessionRoute(route, req, options.sessions);
    // A refused body (too large) is not read to its end: close rather than drain it.
    if (!req.complete) res.setHeader('connection', 'close');
    await sendJson(res, response);
    const failed = response.error !== undefined && response.error.status >= 500;
    (failed ? logger.error : logger.info).call(logger, 'session request finished', {
      action: route.action,
      outcome: response.outcome,
      ms: Date.now() - started,
      ...(failed ? { err: response.error } : {}),
    });
  }

  async function handleUpload(req: IncomingMessage, res: ServerResponse, logger: Logger): Promise<void> {
    const started = Date.now();
    const controller = new AbortController();
    // 'close' before the response finished means the client went away: abort its uploads.
    const onClose = (): void => {
      if (!res.writableFinished) controller.abort(new UploadError('CLIENT_CLOSED_REQUEST', 'The client closed the connection'));
    };
    res.on('close', onClose);

    const events = uploadFiles({ headers: req.headers, body: req, signal: controller.signal }, { ...options.upload, logger });
    let outcome = 'done';
    try {
      const pieces = renderUpload(events, responseMode(headerOf(req, 'accept')), (e) => {
        if (e.type === 'error') outcome = e.code;
      });
      for await (const piece of pieces) {
        if ('head' in piece) writeHead(res, piece.head);
        else if (!res.write(piece.chunk)) await drainOrClose(res);
        if (res.destroyed) break;
      }
    } finally {
      res.off('close', onClose);
      if (!res.destroyed) res.end();
      if (!req.complete) drainRequest(req, maxDrainBytes);
      logger.info('upload finished', { outcome, bytes: req.socket?.bytesRead, ms: Date.now() - started });
    }
  }
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function writeHead(res: ServerResponse, head: ResponseHead): void {
  res.writeHead(head.statusCode, head.headers);
  // NDJSON lines must reach the client as they are written, not when a buffer fills.
  res.flushHeaders();
}

async function drainOrClose(res: ServerResponse): Promise<void> {
  await Promise.race([once(res, 'drain'), once(res, 'close')]);
}

async function sendJson(res: ServerResponse, response: { head: ResponseHead; body: string }): Promise<void> {
  res.writeHead(response.head.statusCode, response.head.headers);
  res.end(response.body);
}

/**
 * Reads and drops what is left of a failed request's body, so that clients still sending
 * get the response rather than a connection reset; closes the connection past a bound.
 */
function drainRequest(req: IncomingMessage, maxBytes: number): void {
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > maxBytes) req.socket.destroy();
  });
  req.on('error', () => {});
  req.resume();
}
