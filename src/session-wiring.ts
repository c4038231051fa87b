/** Builds the upload-session service (direct-to-S3 lane) from config and the process's S3 client. */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Config } from './config.ts';
import { createSessionService, type SessionService } from './core/sessions.ts';
import type { CoreLogger } from './core/upload-files.ts';
import { createS3Client, type S3ClientOptions } from './storage/s3-client.ts';
import { createS3SessionStore } from './storage/s3-sessions.ts';

export function createS3SessionService(
  config: Config,
  client: S3Client,
  secret: string,
  logger: CoreLogger,
  clientOptions: S3ClientOptions = {},
): SessionService {
  // Presigning makes no request; this client exists only so that no flexible-checksum
  // parameter ends up in the URLs (see S3SessionStoreOptions.presignClient).
  const presignClient =
    config.s3.checksumCalculation === 'WHEN_REQUIRED'
      ? client
      : createS3Client({ ...config.s3, checksumCalculation: 'WHEN_REQUIRED' }, clientOptions);
  return createSessionService({
    store: createS3SessionStore({ client, presignClient, bucket: config.s3.bucket }),
    secret,
    ttlSeconds: config.sessions.ttlSeconds,
    batchParts: config.sessions.batchParts,
    minPartBytes: config.s3.partBytes,
    maxFileBytes: config.limits.maxFileBytes,
    keyPrefix: config.keyPrefix,
    ...(config.allowedTypes ? { allowedTypes: config.allowedTypes } : {}),
    logger,
  });
}
