/**
 * Builds the application from config: S3 client and sink, limits, the upload-session service
 * and the app itself. Shared by the Node server and the Lambda function, so both serve the
 * same app; only what differs by platform comes in as options.
 */
import type { Config } from './config.ts';
import { createMemoryBudget } from './core/memory-budget.ts';
import type { UploadDeps } from './core/upload-files.ts';
import type { CoreLogger } from './core/logger.ts';
import { createS3Client, type S3ClientOptions } from './storage/s3-client.ts';
import { PartPool } from './storage/part-pool.ts';
import { createS3PartUploader } from './storage/s3-part-uploader.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { createGcPacer } from './gc-pacer.ts';
import { createSessionService, type SessionService } from './core/sessions.ts';
import { createS3SessionStore } from './storage/s3-sessions.ts';
import type { MemoryBudget } from './core/memory-budget.ts';
import { createApp, type App, type AppMetrics } from './app/app.ts';
import type { Logger } from './logger.ts';
import { createIdempotency } from './app/idempotency.ts';
import { createS3IdempotencyStore } from './storage/s3-idempotency.ts';

/** Where idempotency records live, under the upload prefix (the IAM grant and lifecycle rule cover it). */
export function idempotencyPrefix(config: Config): string {
  return `${config.keyPrefix}.idempotency/`;
}
import type { Lifecycle } from './app/lifecycle.ts';
import { createReadiness } from './app/readiness.ts';
import { createS3Probe } from './storage/s3-probe.ts';

export interface WiringOptions extends S3ClientOptions {
  /** Time budget for clean-up calls after a failure, ms (see S3PartUploaderOptions). */
  cleanupTimeoutMs?: number;
  /** The process's memory budget; default one from config (UPLOAD_MEMORY_BYTES). */
  memoryBudget?: MemoryBudget;
}

export function createS3UploadDeps(
  config: Config,
  logger: CoreLogger,
  options: WiringOptions = {},
): { upload: UploadDeps; client: S3Client } {
  const { cleanupTimeoutMs, memoryBudget, ...clientOptions } = options;
  const client = createS3Client(config.s3, clientOptions);
  // One byte budget for every upload of the process: the part buffers of all files come from it.
  const budget = memoryBudget ?? createMemoryBudget(config.memory.budgetBytes, config.memory.maxWaiting);
  const sink = createS3PartUploader({
    client,
    bucket: config.s3.bucket,
    partBytes: config.s3.partBytes,
    queueSize: config.s3.queueSize,
    pool: new PartPool({ partBytes: config.s3.partBytes, budget }),
    readBack: config.s3.readBack,
    ...(config.s3.unsignedPayload !== undefined ? { unsignedPayload: config.s3.unsignedPayload } : {}),
    logger,
    ...(cleanupTimeoutMs !== undefined ? { cleanupTimeoutMs } : {}),
  });
  const onBodyBytes = createGcPacer(config.memory.gcEveryBytes);
  return {
    client,
    upload: {
      sink,
      limits: config.limits,
      keyPrefix: config.keyPrefix,
      logger,
      ...(config.allowedTypes ? { allowedTypes: config.allowedTypes } : {}),
      ...(onBodyBytes ? { onBodyBytes } : {}),
      sha256: config.sha256 === 'always',
    },
  };
}

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
    maxFields: config.limits.maxFields,
    maxFieldBytes: config.limits.maxFieldBytes,
    keyPrefix: config.keyPrefix,
    ...(config.allowedTypes ? { allowedTypes: config.allowedTypes } : {}),
    logger,
  });
}

export interface ServiceAppOptions {
  logger: Logger;
  metrics?: AppMetrics;
  /** Overrides for the S3 client (embedded S3 endpoint, test credentials). */
  s3?: S3ClientOptions;
  /** See WiringOptions. */
  cleanupTimeoutMs?: number;
  /** The byte budget of the part buffers (the Node server's; default one from config). */
  memoryBudget?: MemoryBudget;
  /** Signs session ids; without one the session routes answer 404. */
  sessionSecret?: string;
  /** In-flight requests and the drain (the Node server; see AppOptions.lifecycle). */
  lifecycle?: Lifecycle;
}

/** The whole service for one process: the app, and the S3 client to destroy on shutdown. */
export function createServiceApp(config: Config, options: ServiceAppOptions): { app: App; client: S3Client } {
  const { logger } = options;
  const { upload, client } = createS3UploadDeps(config, logger, {
    ...options.s3,
    ...(options.cleanupTimeoutMs !== undefined ? { cleanupTimeoutMs: options.cleanupTimeoutMs } : {}),
    ...(options.memoryBudget ? { memoryBudget: options.memoryBudget } : {}),
  });
  const sessions: SessionService | undefined = options.sessionSecret
    ? createS3SessionService(config, client, options.sessionSecret, logger, options.s3)
    : undefined;
  const idempotency = createIdempotency({
    store: createS3IdempotencyStore({ client, bucket: config.s3.bucket, prefix: idempotencyPrefix(config), logger }),
    ttlSeconds: config.idempotency.ttlSeconds,
    staleSeconds: config.idempotency.staleSeconds,
    logger,
  });
  const app = createApp({
    upload,
    logger,
    idempotency,
    authTokens: config.authTokens,
    prefixByCaller: config.prefixByCaller,
    ...(sessions ? { sessions } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.lifecycle ? { lifecycle: options.lifecycle } : {}),
    readiness: createReadiness({ probe: createS3Probe(client, config.s3.bucket), logger }),
  });
  return { app, client };
}
