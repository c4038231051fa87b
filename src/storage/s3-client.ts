import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config.ts';
import { Sha256 } from '../sha256.ts';
import { prepareClient } from './s3-call.ts';

export interface S3ClientOptions {
  /** Overrides `config.s3.endpoint` (the Node server's embedded S3 is only known at start). */
  endpoint?: string;
  /** Static credentials (embedded S3, tests); default the SDK's provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /**
   * Called once per S3 call that finally failed (after the SDK's retries) with its operation
   * (`UploadPart`, ...): the metrics' S3 errors by operation. Aborts of our own are not failures.
   */
  onError?: (operation: string, err: unknown) => void;
}

/** The S3 operation (`UploadPart`, ...) an SDK error came from, set by {@link createS3Client}. */
export function s3OperationOf(err: unknown): string | undefined {
  return (err as { operation?: unknown } | undefined)?.operation as string | undefined;
}

/**
 * One S3 client per process (created at start, reused by every request). Keep-alive sockets
 * sized for `queueSize` parts of many concurrent files; a socket that goes quiet for 60 s
 * fails the request (the SDK then retries it) instead of holding an upload forever.
 */
export function createS3Client(s3: Config['s3'], options: S3ClientOptions = {}): S3Client {
  const endpoint = options.endpoint ?? s3.endpoint;
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  const client = new S3Client({
    region: s3.region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: s3.forcePathStyle || endpoint !== undefined,
    requestChecksumCalculation: s3.checksumCalculation,
    responseChecksumValidation: 'WHEN_REQUIRED',
    // SigV4's hashes, keyed the way Node 24 does not make slow (src/sha256.ts).
    sha256: Sha256,
    ...(options.credentials ? { credentials: options.credentials } : {}),
    // The middleware chain of each command is resolved once (calls go through sendS3, which
    // never passes send() options: those would drop the cache).
    cacheMiddleware: true,
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 5_000,
      requestTimeout: 60_000,
    },
  });
  // An SDK error does not say which call failed; the log line of a failure must (issue 13).
  // At the initialize step this sees each call's final error, after the retries.
  client.middlewareStack.add(
    (next, context) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        const operation = (context.commandName ?? 'unknown').replace(/Command$/, '');
        if (err !== null && typeof err === 'object' && !('operation' in err)) {
          Object.defineProperty(err, 'operation', { value: operation, enumerable: false, configurable: true });
        }
        if ((err as { name?: unknown } | undefined)?.name !== 'AbortError') options.onError?.(operation, err);
        throw err;
      }
    },
    { step: 'initialize', name: 'operationOnError' },
  );
  prepareClient(client);
  return client;
}
