/**
 * The Lambda runtime's streaming API (`awslambda.streamifyResponse`,
 * `awslambda.HttpResponseStream.from`), with a local stand-in when the global is absent
 * (vitest, `serverless invoke local`), as Powertools does. The stand-in follows the runtime's
 * wire format: the JSON prelude, then 8 NUL bytes, then the body, under the content type
 * `application/vnd.awslambda.http-integration-response`.
 */
import type { Writable } from 'node:stream';
import type { Context } from 'aws-lambda';

export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';

/** What the runtime passes as `responseStream` (a Writable with a content-type setter). */
export type ResponseStream = Writable & { setContentType?(contentType: string): void };

export type StreamingHandler<E> = (event: E, responseStream: ResponseStream, context: Context) => Promise<void>;

export interface HttpPrelude {
  statusCode: number;
  headers?: Record<string, string>;
  cookies?: string[];
}

interface AwsLambdaGlobal {
  streamifyResponse<E>(handler: StreamingHandler<E>): StreamingHandler<E>;
  HttpResponseStream: { from(stream: Writable, prelude: HttpPrelude): Writable };
}

/**
 * The runtime's global, when it is really there. The AWS SDK (through
 * @aws/lambda-invoke-store) sets `globalThis.awslambda = {}` on import everywhere, so the
 * presence of the object alone proves nothing: look for the function.
 */
function runtimeGlobal(): AwsLambdaGlobal | undefined {
  const candidate = (globalThis as unknown as { awslambda?: Partial<AwsLambdaGlobal> }).awslambda;
  return typeof candidate?.streamifyResponse === 'function' && typeof candidate.HttpResponseStream?.from === 'function'
    ? (candidate as AwsLambdaGlobal)
    : undefined;
}

/** Marks a handler as streaming on Lambda; returns it unchanged elsewhere. */
export function streamifyResponse<E>(handler: StreamingHandler<E>): StreamingHandler<E> {
  const runtime = runtimeGlobal();
  return runtime ? runtime.streamifyResponse(handler) : handler;
}

/**
 * Starts an HTTP response on the stream: the runtime's own implementation when present (read
 * at call time, so a test harness may install one), else the same bytes written directly.
 */
export function httpResponseStream(stream: ResponseStream, prelude: HttpPrelude): Writable {
  const runtime = runtimeGlobal();
  if (runtime) return runtime.HttpResponseStream.from(stream, prelude);
  stream.setContentType?.(HTTP_INTEGRATION_CONTENT_TYPE);
  stream.write(JSON.stringify(prelude));
  stream.write(new Uint8Array(8));
  return stream;
}
