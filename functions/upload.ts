// Lambda entry point: wiring only. Config is read and validated once per cold start; a bad
// variable fails the init with a message naming it.
import { createLambdaHandler } from '../src/adapters/lambda/handler.ts';
import { streamifyResponse } from '../src/adapters/lambda/runtime.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { createS3UploadDeps } from '../src/wiring.ts';
import { createS3SessionService } from '../src/session-wiring.ts';

const SERVICE = 's3-stream-upload';
const config = loadConfig(process.env, { requireBucket: true });
const logger = createLogger(config.logLevel, { service: SERVICE });
// Clean-up after a deadline must fit in the time kept back from Lambda's timeout.
const { upload, client } = createS3UploadDeps(config, logger, {
  cleanupTimeoutMs: Math.floor(config.lambda.deadlineMarginMs / 2),
});
// Every instance must sign with the same secret, so there is no per-instance fallback.
const sessions = config.sessions.secret ? createS3SessionService(config, client, config.sessions.secret, logger) : undefined;
if (!sessions) logger.warn('UPLOAD_SESSION_SECRET is not set: the upload-session routes answer 404');

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
    ...(sessions ? { sessions } : {}),
    deadlineMarginMs: config.lambda.deadlineMarginMs,
  }),
);
