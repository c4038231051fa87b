/**
 * The Lambda adapter: API Gateway REST (format 1.0) and Function URL (format 2.0) events in,
 * one `app.handle()` call, a streamed HTTP response out. What is Lambda's own:
 * - the body is already in memory (6 MB payload): the app gets its size and the ceiling, and
 *   refuses a larger one with the direct-to-S3 lane as the way out;
 * - there is no client-disconnect event: a deadline taken from the remaining time is the
 *   request's signal, so every upload in flight is aborted before the function times out;
 * - the Node 24 runtime does not wait for promises left after the handler returns, so the
 *   handler returns only after the app's body ended (every Complete/Abort/Delete settled)
 *   and the stream finished.
 */
import { once } from 'node:events';
import { deadlineExceeded, type App } from '../../app/app.ts';
import { callerOf, toHttpRequest, type LambdaHttpEvent } from './events.ts';
import { httpResponseStream, type StreamingHandler } from './runtime.ts';

export interface LambdaAdapterOptions {
  /** Largest decoded body accepted, bytes (config `UPLOAD_LAMBDA_MAX_BODY_BYTES`). */
  maxBodyBytes: number;
  /** Kept back from the remaining time to abort and answer cleanly, ms. */
  deadlineMarginMs: number;
}

export function createLambdaHandler(app: App, options: LambdaAdapterOptions): StreamingHandler<LambdaHttpEvent> {
  return async (event, responseStream, context) => {
    const req = toHttpRequest(event);
    const controller = new AbortController();
    // The remaining time can be negative when the runtime is late; then abort at once.
    const budget = Math.max(0, context.getRemainingTimeInMillis() - options.deadlineMarginMs);
    const timer = setTimeout(() => controller.abort(deadlineExceeded(budget)), budget);
    try {
      const caller = callerOf(event);
      const res = await app.handle({
        method: req.method,
        path: req.path,
        headers: req.headers,
        body: req.body,
        signal: controller.signal,
        requestId: context.awsRequestId,
        ...(caller ? { caller } : {}),
        bodyBytes: req.bodyBytes,
        maxBodyBytes: options.maxBodyBytes,
        logFields: { payloadFormat: req.version },
      });
      const out = httpResponseStream(responseStream, { statusCode: res.status, headers: res.headers });
      // The runtime writes the prelude on the first write() only: an end() with no write
      // before it would send the body without status and headers.
      out.write('');
      for await (const chunk of res.body) {
        if (!out.write(chunk)) await once(out, 'drain');
      }
      await new Promise<void>((resolve) => out.end(() => resolve()));
    } finally {
      // The sandbox is frozen after the handler returns: no timer may be left to fire in the next one.
      clearTimeout(timer);
    }
  };
}
