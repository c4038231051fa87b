// Lambda entry point: wiring only. Config is read and validated once per cold start; a bad
// variable fails the init with a message naming it.
import { createLambdaHandler } from '../src/adapters/lambda/handler.ts';
import { streamifyResponse } from '../src/adapters/lambda/runtime.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { createS3UploadDeps } from '../src/wiring.ts';

const SERVICE = 's3-stream-upload';
const config = loadConfig(process.env, { requireBucket: true });
const logger = createLogger(config.logLevel, { service: SERVICE });
// Clean-up after a deadline must fit in the time kept back from Lambda's timeout.
const { upload } = createS3UploadDeps(config, logger, { cleanupTimeoutMs: Math.floor(config.lambda.deadlineMarginMs / 2) });

export const handler = streamifyResponse(
  createLambdaHandler({
    upload,
    logger,
    // EMF lines are log lines: LOG_LEVEL=silent silences them too.
    metrics: createMetrics({
      namespace: SERVICE,
      service: SERVICE,
      ...(config.logLevel === 'silent' ? { write: () => {} } : {}),
    }),
    maxBodyBytes: config.lambda.maxBodyBytes,
    deadlineMarginMs: config.lambda.deadlineMarginMs,
  }),
);
