// A stand-in for the Lambda Node.js runtime's response streaming, in process, for
// `npm run invoke:local` (the Lambda tests run the function under AWS's own runtime client:
// scripts/lambda-runtime-api.mjs). It installs the `awslambda` global the way the runtime does
// and gives handlers a response stream that behaves like the runtime's where that is cheap:
// - `awslambda.HttpResponseStream.from(stream, prelude)` sets the content type
//   `application/vnd.awslambda.http-integration-response` and, on the first `write()` only,
//   writes the JSON prelude followed by 8 NUL bytes (an `end(data)` with no write before it
//   sends no prelude, as in the runtime);
// - `getRemainingTimeInMillis()` is not clamped at 0;
// - writes complete asynchronously with a small buffer, so backpressure is real;
// - the invocation is over when the handler's promise settles: anything still running then
//   is cut off, as on Node 24 (the runtime does not wait for stray promises). `invoke()`
//   reports whether the stream had finished by then.
import { Writable } from 'node:stream';

export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const DELIMITER = Buffer.alloc(8);

export function installRuntimeGlobals() {
  const previous = globalThis.awslambda;
  globalThis.awslambda = {
    streamifyResponse(handler) {
      handler[STREAMING] = 'response';
      return handler;
    },
    HttpResponseStream: {
      from(stream, prelude) {
        stream.setContentType(HTTP_INTEGRATION_CONTENT_TYPE);
        stream._onBeforeFirstWrite = (write) => {
          write(JSON.stringify(prelude));
          write(new Uint8Array(8));
        };
        return stream;
      },
    },
  };
  return () => {
    if (previous === undefined) delete globalThis.awslambda;
    else globalThis.awslambda = previous;
  };
}

/** The runtime's response stream: collects bytes; `_onBeforeFirstWrite` runs once. */
export function createResponseStream({ highWaterMark = 16 * 1024, onChunk } = {}) {
  const chunks = [];
  let contentType = 'application/octet-stream';
  let firstWriteDone = false;
  const stream = new Writable({
    highWaterMark,
    write(chunk, _enc, cb) {
      chunks.push(Buffer.from(chunk));
      onChunk?.(Buffer.from(chunk));
      setImmediate(cb);
    },
  });
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, cb) => {
    if (!firstWriteDone) {
      firstWriteDone = true;
      stream._onBeforeFirstWrite?.((c) => write(c));
    }
    return write(chunk, encoding, cb);
  };
  stream.setContentType = (type) => {
    contentType = type;
  };
  return { stream, bytes: () => Buffer.concat(chunks), contentType: () => contentType };
}

/** Splits what the runtime would send into prelude and body. */
export function parseHttpIntegrationResponse(contentType, raw) {
  if (contentType !== HTTP_INTEGRATION_CONTENT_TYPE) return { prelude: undefined, body: raw };
  const at = raw.indexOf(DELIMITER);
  if (at < 0) return { prelude: undefined, body: raw }; // no write() before end(): no status
  return { prelude: JSON.parse(raw.subarray(0, at).toString('utf8')), body: raw.subarray(at + 8) };
}

/** A Lambda context with a clock: getRemainingTimeInMillis() counts down from `timeoutMs`. */
export function createContext({ timeoutMs = 60_000, requestId = 'local-request' } = {}) {
  const deadline = Date.now() + timeoutMs;
  return {
    awsRequestId: requestId,
    functionName: 's3-stream-upload-local-upload',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:s3-stream-upload-local-upload',
    memoryLimitInMB: '1024',
    logGroupName: '/aws/lambda/s3-stream-upload-local-upload',
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done() {},
    fail() {},
    succeed() {},
  };
}

/**
 * Invokes a streaming handler like the runtime: returns the status, headers and body it sent,
 * and whether the stream had ended when the handler's promise settled.
 */
export async function invoke(handler, event, { timeoutMs, requestId, onChunk } = {}) {
  const response = createResponseStream({ onChunk });
  const context = createContext({ timeoutMs, requestId });
  await handler(event, response.stream, context);
  const streamEndedBeforeReturn = response.stream.writableFinished;
  const { prelude, body } = parseHttpIntegrationResponse(response.contentType(), response.bytes());
  return {
    contentType: response.contentType(),
    statusCode: prelude?.statusCode,
    headers: prelude?.headers ?? {},
    body: body.toString('utf8'),
    streamEndedBeforeReturn,
  };
}
