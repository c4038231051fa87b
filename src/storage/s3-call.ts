/**
 * S3 calls with an abort signal and a payload-signing mode of their own, sent without
 * send() options.
 *
 * Why: the SDK reuses a command's resolved middleware chain (`cacheMiddleware`) only for calls
 * made without options, and a single call with options drops that cache for the whole client;
 * the abort signal is such an option. On a client prepared here the call's settings ride on
 * the command's input under a symbol key instead (the serializers read only the members they
 * know): one middleware turns `unsignedPayload` into the header, another hands the signal to
 * the request handler with the request that was finally signed. Any other client (a test's
 * own) gets the options, and a middleware per command, as the SDK documents them.
 */
import type { S3Client } from '@aws-sdk/client-s3';

export interface CallSettings {
  /** Cuts the call, in flight too. */
  signal?: AbortSignal | undefined;
  /**
   * Sign with `x-amz-content-sha256: UNSIGNED-PAYLOAD` (the signer then does not hash the
   * body). S3 allows it; TLS protects the payload in transit, and a CRC32 (when the checksum
   * mode asks for one) still checks it end to end
   * (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
   */
  unsignedPayload?: boolean;
}

const CALL = Symbol('s3-stream-upload.call');

/** The slice of a command used here (the SDK's own command types are overloads). */
interface AnyCommand {
  readonly input: object;
  readonly middlewareStack: unknown;
}

interface Stack {
  add(
    middleware: (next: (args: Args) => Promise<unknown>) => (args: Args) => Promise<unknown>,
    options: { step: 'build' | 'deserialize'; name: string; override?: boolean; priority?: 'low' },
  ): void;
}

interface Args {
  input?: { [CALL]?: CallSettings };
  request?: { headers?: Record<string, string> };
}

interface RequestHandler {
  handle(request: object, options?: { abortSignal?: unknown }): Promise<unknown>;
}

const prepared = new WeakSet<S3Client>();
const requestSignals = new WeakMap<object, AbortSignal>();

const unsignedPayload =
  (next: (args: Args) => Promise<unknown>) =>
  (args: Args): Promise<unknown> => {
    if (args.request?.headers) args.request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    return next(args);
  };

/**
 * Makes `client` take call settings from the input. Call before its first send (the SDK
 * caches the middleware chain then). Idempotent.
 */
export function prepareClient(client: S3Client): void {
  if (prepared.has(client)) return;
  prepared.add(client);
  const stack = client.middlewareStack as unknown as Stack;
  stack.add((next) => (args) => (args.input?.[CALL]?.unsignedPayload ? unsignedPayload(next)(args) : next(args)), {
    step: 'build',
    name: 'callUnsignedPayload',
  });
  // After signing and the retry loop: `request` is what the handler is given, per attempt.
  stack.add(
    (next) => (args) => {
      const signal = args.input?.[CALL]?.signal;
      if (signal && args.request) requestSignals.set(args.request, signal);
      return next(args);
    },
    { step: 'deserialize', name: 'callAbortSignal', priority: 'low' },
  );
  const handler = client.config.requestHandler as unknown as RequestHandler;
  const handle = handler.handle.bind(handler);
  handler.handle = (request, options) => {
    const signal = options?.abortSignal === undefined ? requestSignals.get(request) : undefined;
    return handle(request, signal ? { ...options, abortSignal: signal } : options);
  };
}

/** Sends `command` with `settings`; resolves with its output as `client.send` does. */
export function sendS3<C extends AnyCommand, Output>(
  client: S3Client,
  command: C,
  settings: CallSettings,
  send: (command: C, options?: { abortSignal?: AbortSignal }) => Promise<Output>,
): Promise<Output> {
  if (prepared.has(client)) {
    (command.input as { [CALL]?: CallSettings })[CALL] = settings;
    return send(command);
  }
  if (settings.unsignedPayload) {
    (command.middlewareStack as unknown as Stack).add(unsignedPayload, {
      step: 'build',
      name: 'unsignedPayloadMiddleware',
      override: true,
    });
  }
  return settings.signal ? send(command, { abortSignal: settings.signal }) : send(command);
}
