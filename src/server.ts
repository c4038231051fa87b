/**
 * The Node HTTP server: `npm start`. Uses the S3 named by S3_ENDPOINT / UPLOAD_BUCKET, or
 * starts an embedded S3 (s3rver, data under .data/) when none is configured.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequestListener } from './adapters/node-http.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startEmbeddedS3, EMBEDDED_CREDENTIALS, type EmbeddedS3 } from './embedded-s3.ts';
import { createMemoryBudget } from './core/memory-budget.ts';
import { createLogger, type Logger } from './logger.ts';
import type { S3ClientOptions } from './storage/s3-client.ts';
import { createServiceApp } from './wiring.ts';
import { randomBytes } from 'node:crypto';

export interface StartOptions {
  logger?: Logger;
  /** Where the embedded S3 keeps its data. Default `<cwd>/.data/s3`. */
  dataDir?: string;
  /** Overrides for the S3 client (tests pass static credentials). */
  s3?: S3ClientOptions;
}

export interface RunningServer {
  /** Base URL, e.g. `http://127.0.0.1:3000`. */
  url: string;
  server: Server;
  /** The S3 endpoint in use (the embedded one when started). */
  s3Endpoint: string | undefined;
  close(): Promise<void>;
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(config.logLevel, { service: 's3-stream-upload' });
  let embedded: EmbeddedS3 | undefined;
  if (config.s3.embedded) {
    embedded = await startEmbeddedS3({
      directory: options.dataDir ?? resolve('.data/s3'),
      bucket: config.s3.bucket,
    });
  }
  const clientOptions: S3ClientOptions = { ...options.s3 };
  if (embedded) {
    clientOptions.endpoint = embedded.endpoint;
    clientOptions.credentials ??= { ...EMBEDDED_CREDENTIALS };
  }
  let sessionSecret = config.sessions.secret;
  if (sessionSecret === undefined) {
    // Session ids are signed with this; one per process means they do not survive a restart
    // nor work across instances behind a load balancer.
    sessionSecret = randomBytes(32).toString('base64url');
    logger.warn('UPLOAD_SESSION_SECRET is not set: upload sessions use a random per-process secret and do not survive a restart');
  }
  const { app, client } = createServiceApp(config, {
    logger,
    s3: clientOptions,
    sessionSecret,
    // One budget for every upload of this process (a Lambda instance serves one request at a time).
    ...(config.memory.budgetBytes > 0
      ? { memoryBudget: createMemoryBudget(config.memory.budgetBytes, config.memory.maxWaiting) }
      : {}),
  });
  const server = createServer(
    // No limit on a whole request (a 5 GiB file on a slow link takes long); headers and idle
    // time are bounded instead (config.timeouts).
    {
      requestTimeout: 0,
      headersTimeout: config.timeouts.headersMs,
      // node:http checks header deadlines on this interval (default 30 s): keep it finer.
      connectionsCheckingInterval: Math.min(30_000, Math.max(50, Math.floor(config.timeouts.headersMs / 4))),
      keepAliveTimeout: 5_000,
    },
    createRequestListener(app),
  );
  server.setTimeout(config.timeouts.idleMs);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(config.port, config.host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    server,
    s3Endpoint: embedded?.endpoint ?? config.s3.endpoint,
    async close() {
      server.closeIdleConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
      client.destroy();
      await embedded?.close();
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const running = await startServer(config);
  const where = config.s3.embedded
    ? `embedded S3 at ${running.s3Endpoint} (bucket "${config.s3.bucket}", data in .data/s3)`
    : `bucket "${config.s3.bucket}"${config.s3.endpoint ? ` at ${config.s3.endpoint}` : ''}`;
  // stdout carries JSON lines only (log shippers parse every line); the hint for people goes to stderr.
  process.stdout.write(
    JSON.stringify({
      level: 'info',
      time: new Date().toISOString(),
      service: 's3-stream-upload',
      message: `listening on ${running.url}`,
      url: running.url,
      storage: where,
    }) + '\n',
  );
  const auth = Object.keys(config.authTokens).length ? ' -H "Authorization: Bearer $UPLOAD_AUTH_TOKEN"' : '';
  process.stderr.write(
    `s3-stream-upload listening on ${running.url} -> ${where}\nTry: curl${auth} -F "note=hello" -F "file=@package.json" ${running.url}/uploads\n`,
  );
  const stop = (): void => {
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

// `import.meta.main` exists from Node 24 on; on older Nodes compare the entry file instead, so
// `node dist/server.mjs` never exits silently without serving.
const isEntry =
  import.meta.main ?? (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url));
if (isEntry) {
  main().catch((err: unknown) => {
    process.stderr.write(`failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
