/** Builds the upload pipeline's dependencies from config: S3 client, S3 sink, limits. */
import type { Config } from './config.ts';
import type { CoreLogger, UploadDeps } from './core/upload-files.ts';
import { createS3Client, type S3ClientOptions } from './storage/s3-client.ts';
import { createS3PartUploader } from './storage/s3-part-uploader.ts';
import { createS3Sink } from './storage/s3-sink.ts';
import type { S3Client } from '@aws-sdk/client-s3';
import { createGcPacer } from './gc-pacer.ts';

export interface WiringOptions extends S3ClientOptions {
  /** Time budget for clean-up calls after a failure, ms (see S3SinkOptions). */
  cleanupTimeoutMs?: number;
}

export function createS3UploadDeps(
  config: Config,
  logger: CoreLogger,
  options: WiringOptions = {},
): { upload: UploadDeps; client: S3Client } {
  const { cleanupTimeoutMs, ...clientOptions } = options;
  const client = createS3Client(config.s3, clientOptions);
  const sinkOptions = {
    client,
    bucket: config.s3.bucket,
    partBytes: config.s3.partBytes,
    queueSize: config.s3.queueSize,
    ...(config.s3.unsignedPayload !== undefined ? { unsignedPayload: config.s3.unsignedPayload } : {}),
    logger,
    ...(cleanupTimeoutMs !== undefined ? { cleanupTimeoutMs } : {}),
  };
  const pooled = config.s3.uploader === 'pooled';
  const onBodyBytes = createGcPacer(config.memory.gcEveryBytes);
  const sink = pooled ? createS3PartUploader(sinkOptions) : createS3Sink(sinkOptions);
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
      // What a file reserves from the memory budget at admission. lib-storage may hold the
      // parts in flight, the one being gathered and its Buffer.concat copy; the pooled
      // uploader's memory is its shared pool, so a file only counts one part towards admission.
      fileMemoryBytes: config.s3.partBytes * (pooled ? 1 : config.s3.queueSize + 2),
    },
  };
}
