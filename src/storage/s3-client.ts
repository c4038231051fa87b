import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import type { Config } from '../config.ts';

export interface S3ClientOptions {
  /** Overrides `config.s3.endpoint` (the Node server's embedded S3 is only known at start). */
  endpoint?: string;
  /** Static credentials (embedded S3, tests); default the SDK's provider chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/**
 * One S3 client per process (created at start, reused by every request). Keep-alive sockets
 * sized for `queueSize` parts of many concurrent files; a socket that goes quiet for 60 s
 * fails the request (the SDK then retries it) instead of holding an upload forever.
 */
export function createS3Client(s3: Config['s3'], options: S3ClientOptions = {}): S3Client {
  const endpoint = options.endpoint ?? s3.endpoint;
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  return new S3Client({
    region: s3.region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: s3.forcePathStyle || endpoint !== undefined,
    requestChecksumCalculation: s3.checksumCalculation,
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(options.credentials ? { credentials: options.credentials } : {}),
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 5_000,
      requestTimeout: 60_000,
    },
  });
}
