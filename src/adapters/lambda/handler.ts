/**
 * The Lambda adapter: API Gateway REST (format 1.0) and Function URL (format 2.0) events in,
 * a streamed HTTP response out (same contract as the Node server). What differs from Node:
 * - the body is already in memory (6 MB payload limit): a larger body is refused up front,
 *   with the direct-to-S3 lane as the way out;
 * - there is no client-disconnect event: a deadline taken from the remaining time aborts
 *   every upload in flight and answers 504 TIMEOUT (or a final NDJSON error line);
 * - the Node 24 runtime does not wait for promises left after the handler returns, so the
 *   handler returns only after every Complete/Abort/Delete settled and the stream finished.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { UploadError } from '../../core/errors.ts';
import { uploadFiles, type UploadDeps } from '../../core/upload-files.ts';
import type { Logger } from '../../logger.ts';
import type { MetricsRecorder } from '../../metrics.ts';
import type { UploadEvent } from '../../protocol.ts';
import { errorResponse, jsonResponse, renderUpload, responseMode, type ResponseHead, type ResponsePiece } from '../respond.ts';
import { matchRoute } from '../routes.ts';
import { handleSessionRoute } from '../session-routes.ts';
import type { SessionService } from '../../core/sessions.ts';
import { toHttpRequest, type LambdaHttpEvent } from './events.ts';
import { httpResponseStream, type ResponseStream, type StreamingHandler } from './runtime.ts';

export interface LambdaHandlerOptions {
  upload: UploadDeps;
  logger: Logger;
  metrics: MetricsRecorder;
  /** Largest decoded body accepted, bytes (config `UPLOAD_LAMBDA_MAX_BODY_BYTES`). */
  maxBodyBytes: number;
  /** Kept back from the remaining time to abort and answer cleanly, ms. */
  deadlineMarginMs: number;
  /** Upload sessions (direct-to-S3 lane); without it the session routes answer 404. */
  sessions?: SessionService;
}

const LIMIT_CODES = new Set(['FILE_TOO_LARGE', 'TOO_MANY_FILES', 'TOO_MANY_FIELDS', 'FIELD_TOO_LARGE', 'PAYLOAD_TOO_LARGE']);

export function createLambdaHandler(options: LambdaHandlerOptions): StreamingHandler<LambdaHttpEvent> {
  return async (event, responseStream, context) => {
    const started = Date.now();
    const req = toHttpRequest(event);
    const requestId = context.awsRequestId;
    const correlationId = req.headers['x-correlation-id'] ?? req.headers['x-request-id'] ?? requestId;
    const logger = options.logger.child({ requestId, correlationId });
    const { metrics } = options;
    const baseHeaders = { 'x-request-id': requestId };
    const route = matchRoute(req.method, req.path);

    let pieces: AsyncIterable<ResponsePiece>;
    let terminal: UploadEvent | undefined;
    let filesStarted = 0;
    let timer: NodeJS.Timeout | undefined;

    if (route.kind === 'health') pieces = single(jsonResponse(200, { status: 'ok' }, baseHeaders));
    else if (route.kind === 'error') pieces = single(errorResponse(route.error, { ...baseHeaders, ...route.headers }));
    else if (route.kind === 'session') {
      // JSON in and out, well under the payload limit; no file byte passes through here.
      const started = Date.now();
      pieces = (async function* () {
        const res = await handleSessionRoute(route, req.body, options.sessions);
        const failed = res.error !== undefined && res.error.status >= 500;
        (failed ? logger.error : logger.info).call(logger, 'session request finished', {
          action: route.action,
          outcome: res.outcome,
          payloadFormat: req.version,
          ms: Date.now() - started,
          ...(failed ? { err: res.error } : {}),
        });
        yield* single({ head: { ...res.head, headers: { ...res.head.headers, ...baseHeaders } }, body: res.body });
      })();
    } else if (req.bodyBytes > options.maxBodyBytes) {
      const error = new UploadError(
        'PAYLOAD_TOO_LARGE',
        `Request body is ${req.bodyBytes} bytes; this endpoint takes at most ${options.maxBodyBytes}. ` +
          'Send larger files through the direct-to-S3 lane (POST /uploads/sessions).',
      );
      terminal = { type: 'error', code: error.code, message: error.message };
      pieces = single(errorResponse(error, baseHeaders));
    } else {
      const controller = new AbortController();
      const budget = Math.max(0, context.getRemainingTimeInMillis() - options.deadlineMarginMs);
      timer = setTimeout(
        () => controller.abort(new UploadError('TIMEOUT', `The upload did not finish within ${budget} ms`)),
        budget,
      );
      const events = uploadFiles(
        { headers: req.headers, body: req.body, signal: controller.signal },
        { ...options.upload, logger },
      );
      pieces = withHeaders(
        renderUpload(events, responseMode(req.headers['accept']), (e) => {
          if (e.type === 'file-started') filesStarted++;
          if (e.type === 'done' || e.type === 'error') terminal = e;
        }),
        baseHeaders,
      );
    }

    try {
      await writeResponse(responseStream, pieces);
    } finally {
      clearTimeout(timer);
      if (route.kind === 'upload') {
        record(metrics, terminal, filesStarted, Date.now() - started);
        logger.info('upload finished', {
          outcome: terminal?.type === 'error' ? terminal.code : (terminal?.type ?? 'unknown'),
          files: terminal?.type === 'done' ? terminal.files.length : 0,
          bodyBytes: req.bodyBytes,
          payloadFormat: req.version,
          ms: Date.now() - started,
        });
      }
      metrics.flush();
    }
  };
}

/** Writes the pieces with backpressure and returns once the stream has finished. */
async function writeResponse(responseStream: ResponseStream, pieces: AsyncIterable<ResponsePiece>): Promise<void> {
  let out: Writable | undefined;
  for await (const piece of pieces) {
    if ('head' in piece) out = httpResponseStream(responseStream, toPrelude(piece.head));
    else if (out && !out.write(piece.chunk)) await once(out, 'drain');
  }
  out ??= httpResponseStream(responseStream, { statusCode: 500, headers: {} });
  out.end();
  await finished(out);
}

function toPrelude(head: ResponseHead) {
  return { statusCode: head.statusCode, headers: head.headers };
}

async function* single(response: { head: ResponseHead; body: string }): AsyncGenerator<ResponsePiece> {
  yield { head: response.head };
  yield { chunk: response.body };
}

async function* withHeaders(
  pieces: AsyncIterable<ResponsePiece>,
  headers: Record<string, string>,
): AsyncGenerator<ResponsePiece> {
  for await (const piece of pieces) {
    yield 'head' in piece ? { head: { ...piece.head, headers: { ...piece.head.headers, ...headers } } } : piece;
  }
}

function record(metrics: MetricsRecorder, terminal: UploadEvent | undefined, filesStarted: number, ms: number): void {
  metrics.add('UploadDuration', 'Milliseconds', ms);
  if (terminal?.type === 'done') {
    metrics.add('UploadedFiles', 'Count', terminal.files.length);
    metrics.add(
      'UploadedBytes',
      'Bytes',
      terminal.files.reduce((n, f) => n + f.size, 0),
    );
    return;
  }
  metrics.add('FailedRequests', 'Count', 1);
  if (filesStarted > 0) metrics.add('AbortedUploads', 'Count', filesStarted);
  if (terminal?.type === 'error' && LIMIT_CODES.has(terminal.code)) metrics.add('LimitTrips', 'Count', 1);
  if (terminal?.type === 'error' && terminal.code === 'TIMEOUT') metrics.add('Timeouts', 'Count', 1);
}
