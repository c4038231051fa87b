// Lambda entry point: wiring only. Config is read and validated once per cold start; a bad
// variable fails the init with a message naming it.
import { createLambdaHandler } from '../src/adapters/lambda/handler.ts';
import { streamifyResponse } from '../src/adapters/lambda/runtime.ts';
import { createEmfMetrics } from '../src/app/metrics.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { createMetrics } from '../src/metrics.ts';
import { loadSessionSecret } from '../src/secrets.ts';
import { createServiceApp } from '../src/wiring.ts';

const SERVICE = 's3-stream-upload';
const config = loadConfig(process.env, { requireBucket: true });
const logger = createLogger(config.logLevel, { service: SERVICE });
// Every instance must sign with the same secret, so there is no per-instance fallback.
// Read from SSM (SecureString) at init when UPLOAD_SESSION_SECRET_PARAM names it.
const sessionSecret = await loadSessionSecret(config);
if (!sessionSecret) logger.warn('UPLOAD_SESSION_SECRET is not set: the upload-session routes answer 404');

const { app } = createServiceApp(config, {
  logger,
  // EMF lines are log lines: LOG_LEVEL=silent silences them too.
  metrics: createEmfMetrics(
    createMetrics({
      namespace: SERVICE,
      service: SERVICE,
      stage: config.stage,
      functionName: config.lambda.functionName,
      ...(config.logLevel === 'silent' ? { write: () => {} } : {}),
    }),
  ),
  // Clean-up after a deadline must fit in the time kept back from Lambda's timeout.
  cleanupTimeoutMs: Math.floor(config.lambda.deadlineMarginMs / 2),
  ...(sessionSecret ? { sessionSecret } : {}),
});

export const handler = streamifyResponse(
  createLambdaHandler(app, { maxBodyBytes: config.lambda.maxBodyBytes, deadlineMarginMs: config.lambda.deadlineMarginMs }),
);
