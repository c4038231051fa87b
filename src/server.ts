/**
 * The Node HTTP server: `npm start`. Uses the S3 named by S3_ENDPOINT / UPLOAD_BUCKET, or
 * starts an embedded S3 (s3rver, data under .data/) when none is configured.
 *
 * SIGTERM/SIGINT drain it: new uploads get 503 SHUTTING_DOWN while the listener stays open
 * for the probes (`/readyz` 503, `/healthz` 200); uploads in flight get UPLOAD_DRAIN_TIMEOUT_MS
 * to finish, then the rest are aborted all-or-nothing (a second signal skips the wait), and
 * the process exits 0 before an orchestrator's SIGKILL could leave multipart uploads open.
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
import { createLifecycle, drainDeadline, type Lifecycle } from './app/lifecycle.ts';
import { createPrometheusMetrics } from './app/prometheus-metrics.ts';

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
  /** The app's in-flight requests and drain state. */
  lifecycle: Lifecycle;
  /**
   * The graceful stop: refuses new uploads, waits up to `config.timeouts.drainMs` (or until
   * `skip` resolves: a second signal) for those in flight, aborts the rest and waits for their
   * clean-up, then closes the listener and the S3 client. Logs each step.
   */
  shutdown(options?: { skip?: Promise<unknown> }): Promise<void>;
  close(): Promise<void>;
}

/** Bound on the aborted uploads' clean-up (their S3 calls have budgets of their own), ms. */
const ABORT_SETTLE_MS = 10_000;
/** Time connections get to close by themselves once every answer is sent, ms. */
const CLOSE_GRACE_MS = 1_000;
/** A repeat of the first signal within this is the same signal delivered twice, ms. */
const DUPLICATE_SIGNAL_MS = 300;

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
  // Powertools and the SSM client (src/secrets.ts) are loaded only when there is a parameter
  // to read. The Lambda entry imports secrets.ts as usual: its bundle keeps only the SSM
  // operations the provider calls, which esbuild cannot do for a module loaded this way.
  let sessionSecret =
    config.sessions.secretParam === undefined
      ? config.sessions.secret
      : await (await import('./secrets.ts')).loadSessionSecret(config);
  if (sessionSecret === undefined) {
    // Session ids are signed with this; one per process means they do not survive a restart
    // nor work across instances behind a load balancer.
    sessionSecret = randomBytes(32).toString('base64url');
    logger.warn('UPLOAD_SESSION_SECRET is not set: upload sessions use a random per-process secret and do not survive a restart');
  }
  // One budget for every upload of this process (a Lambda instance serves one request at a time).
  const memoryBudget =
    config.memory.budgetBytes > 0 ? createMemoryBudget(config.memory.budgetBytes, config.memory.maxWaiting) : undefined;
  const lifecycle = createLifecycle();
  const metrics = createPrometheusMetrics({ lifecycle, ...(memoryBudget ? { memoryBudget } : {}) });
  const { app, client } = createServiceApp(config, {
    logger,
    metrics,
    lifecycle,
    s3: { ...clientOptions, onError: metrics.recordS3Error },
    sessionSecret,
    ...(memoryBudget ? { memoryBudget } : {}),
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
  const close = async (): Promise<void> => {
    const closed = new Promise<void>((ok) => server.close(() => ok()));
    server.closeIdleConnections();
    // A connection still open after every answer was sent (a client that keeps sending a
    // body nobody reads) does not hold the exit.
    const timer = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    await closed;
    clearTimeout(timer);
    client.destroy();
    await embedded?.close();
  };
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    server,
    s3Endpoint: embedded?.endpoint ?? config.s3.endpoint,
    lifecycle,
    async shutdown({ skip } = {}) {
      const started = Date.now();
      const timeoutMs = config.timeouts.drainMs;
      // The listener stays open for the probes; refusals end their connection (the app sets
      // Connection: close) and idle keep-alive connections are closed, so clients reconnect
      // to another instance. Answers of uploads in flight keep theirs: their bodies are still
      // being read, and closing under them could reset the answer away.
      lifecycle.startDraining();
      server.closeIdleConnections();
      logger.info('draining', { inFlight: lifecycle.inFlight, drainTimeoutMs: timeoutMs });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const why = await Promise.race([
        lifecycle.idle().then(() => 'idle' as const),
        new Promise<'deadline'>((ok) => (timer = setTimeout(() => ok('deadline'), timeoutMs))),
        ...(skip ? [skip.then(() => 'second signal' as const)] : []),
      ]);
      clearTimeout(timer);
      if (why !== 'idle' && lifecycle.inFlight > 0) {
        const aborted = lifecycle.abortAll(drainDeadline(timeoutMs));
        logger.warn('uploads aborted at the drain deadline', { aborted, after: why, ms: Date.now() - started });
        await Promise.race([lifecycle.idle(), new Promise((ok) => (timer = setTimeout(ok, ABORT_SETTLE_MS)))]);
        clearTimeout(timer);
      }
      logger.info('drained', { inFlight: lifecycle.inFlight, ms: Date.now() - started });
      await close();
    },
    close,
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
  const logger = createLogger(config.logLevel, { service: 's3-stream-upload' });
  const running = await startServer(config, { logger });
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
  // The first signal drains; a second one skips the wait (the uploads are still aborted
  // cleanly). Handled with on(), not once(): a second signal must not kill the process with
  // multipart uploads open.
  let skip: (() => void) | undefined;
  let first: { signal: NodeJS.Signals; at: number } | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    // Ctrl-C in a terminal reaches both npm and node (one process group), and npm forwards
    // it: the same signal twice within milliseconds is one keypress, not a second signal.
    if (first && first.signal === signal && Date.now() - first.at < DUPLICATE_SIGNAL_MS) return;
    if (skip) {
      logger.warn('second signal: aborting the uploads in flight now', { signal, inFlight: running.lifecycle.inFlight });
      skip();
      return;
    }
    first = { signal, at: Date.now() };
    logger.info('signal received', { signal, inFlight: running.lifecycle.inFlight });
    const skipped = new Promise<void>((ok) => (skip = ok));
    running.shutdown({ skip: skipped }).then(
      () => {
        logger.info('exit', { code: 0 });
        process.exit(0);
      },
      (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
