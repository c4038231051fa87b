/**
 * The application: one transport-free `handle(request) -> response` for every platform.
 * Routing, authentication, the upload and session routes, rendering, the request's log line
 * and its metrics all live here, so the Node server and the Lambda function cannot drift
 * apart. Adapters only turn a platform's request into an {@link AppRequest} (body as a
 * Readable, client disconnect or deadline as the signal) and write the {@link AppResponse}.
 */
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { UploadError } from '../core/errors.ts';
import type { SessionService } from '../core/sessions.ts';
import { uploadFiles, type UploadDeps } from '../core/upload-files.ts';
import { IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER, type StoredFile, type UploadEvent } from '../protocol.ts';
import type { Logger } from '../logger.ts';
import { callerPrefix, createAuthenticator } from './auth.ts';
import { UPLOADED_BY_METADATA_KEY } from '../core/metadata.ts';
import { errorResponse, jsonResponse, renderUpload, responseMode, retryAfterHeaders, type ResponseHead } from './render.ts';
import { OPENAPI_DOCUMENT } from './openapi.ts';
import { shuttingDown, type Lifecycle } from './lifecycle.ts';
import type { Readiness, ReadinessState } from './readiness.ts';
import { matchRoute, OPEN_ROUTES, type Route } from './routes.ts';
import { handleSessionRoute } from './session-routes.ts';
import { runAdmitted, type AdmittedUpload, type Idempotency } from './idempotency.ts';

export interface AppRequest {
  method: string;
  /** Path without query string or stage, e.g. `/uploads`. */
  path: string;
  /** Header names lowercased. */
  headers: Readonly<Record<string, string | undefined>>;
  /** The request body; the app reads it as far as it needs, never destroys it. */
  body: Readable;
  /** Aborted when the client goes away or the platform's deadline nears; its reason is an UploadError. */
  signal: AbortSignal;
  /** The platform's request id (Lambda's awsRequestId); default a random UUID. */
  requestId?: string;
  /**
   * A caller the platform already verified: the IAM principal's ARN, or `api-key:<id>`.
   * Undefined on the Node server, where bearer tokens name the caller.
   */
  caller?: string;
  /** Decoded body length when the platform knows it up front (Lambda), bytes. */
  bodyBytes?: number;
  /** Largest body the platform can take, bytes (Lambda's payload ceiling); default none. */
  maxBodyBytes?: number;
  /** Extra fields for the request's log line (e.g. Lambda's payload format). */
  logFields?: Record<string, unknown>;
}

export interface AppResponse {
  status: number;
  headers: Record<string, string>;
  /**
   * The body, in pieces to write as they come (NDJSON lines are written as events happen).
   * Iterate it to the end: the request's log line and metrics are written when it ends.
   */
  body: AsyncIterable<string>;
  /**
   * What to do with a request body the app did not read to its end: `drain` reads and drops
   * it so a client still sending sees the answer; `close` ends the connection (the app
   * refused before reading, so the body may be large).
   */
  unreadBody: 'drain' | 'close';
}

/** What one finished request did, for metrics. Files and bytes count stored files only. */
export interface RequestRecord {
  route: Route['kind'];
  /** Session action, when route is `session`. */
  action?: string;
  /** `done`, a session outcome (`created`, ...) or the error code. */
  outcome: string;
  status: number;
  ms: number;
  caller: string;
  filesStored: number;
  bytesStored: number;
  /** Files whose upload started and was then aborted. */
  filesAborted: number;
}

/** The metrics port: one call per finished request (EMF on Lambda, Prometheus on Node). */
export interface AppMetrics {
  record(record: RequestRecord): void;
  /** The metrics as text for `GET /metrics` (Prometheus); without it that route answers 404. */
  render?(): Promise<{ contentType: string; body: string }>;
}

export interface AppOptions {
  upload: UploadDeps;
  logger: Logger;
  /** Upload sessions (direct-to-S3 lane); without it the session routes answer 404. */
  sessions?: SessionService;
  /** Bearer tokens by caller name; empty or absent means open access (see auth.ts). */
  authTokens?: Readonly<Record<string, string>>;
  metrics?: AppMetrics;
  /** Put each caller's objects under `<keyPrefix><caller>/` (see callerPrefix). Default false. */
  prefixByCaller?: boolean;
  /** Idempotent retries (`Idempotency-Key`, see idempotency.ts); without it the header is ignored. */
  idempotency?: Idempotency;
  /**
   * In-flight requests and the drain (the Node server): while draining, uploads and session
   * requests are refused with 503 SHUTTING_DOWN, and `abortAll()` aborts those in flight.
   * Absent on Lambda, where nothing changes.
   */
  lifecycle?: Lifecycle;
  /** The store's reachability for `/readyz`; without it `/readyz` answers from the drain state alone. */
  readiness?: Readiness;
}

export interface App {
  /** Resolves once the response's status is known; never rejects. */
  handle(request: AppRequest): Promise<AppResponse>;
}

export function createApp(options: AppOptions): App {
  const authenticate = createAuthenticator(options.authTokens ?? {});
  const metrics = options.metrics;

  return {
    async handle(req) {
      const started = Date.now();
      const requestId = req.requestId ?? randomUUID();
      const correlationId = req.headers['x-correlation-id'] ?? req.headers['x-request-id'] ?? requestId;
      const logger = options.logger.child({ requestId, correlationId });
      const baseHeaders = { 'x-request-id': requestId };
      const route = matchRoute(req.method, req.path);

      let caller = 'anonymous';
      let untrack: (() => void) | undefined;
      const finish = (
        fields: Omit<RequestRecord, 'route' | 'ms' | 'caller'>,
        logExtra: Record<string, unknown> = {},
        err?: UploadError,
      ) => {
        untrack?.();
        const record: RequestRecord = { route: route.kind, ms: Date.now() - started, caller, ...fields };
        metrics?.record(record);
        // Probes and scrapes come every few seconds: their log lines would drown the rest.
        if (route.kind === 'health' || route.kind === 'ready' || (route.kind === 'metrics' && record.status === 200)) return;
        const failed = err !== undefined && err.status >= 500;
        (failed ? logger.error : logger.info).call(logger, 'request finished', {
          method: req.method,
          path: req.path,
          route: route.kind,
          ...(record.action ? { action: record.action } : {}),
          caller,
          outcome: record.outcome,
          status: record.status,
          ms: record.ms,
          ...logExtra,
          ...req.logFields,
          ...(failed ? { err } : {}),
        });
      };

      try {
        if (!OPEN_ROUTES.has(route.kind)) {
          const auth = authenticate(req.caller, req.headers['authorization']);
          if ('error' in auth) {
            return fixed(errorResponse(auth.error, { ...baseHeaders, 'www-authenticate': 'Bearer' }), 'close', () =>
              finish(outcomeOf(auth.error)),
            );
          }
          caller = auth.caller;
        }
        const lifecycle = options.lifecycle;
        if (lifecycle && (route.kind === 'upload' || route.kind === 'session')) {
          if (lifecycle.draining) {
            const error = shuttingDown();
            // Connection: close, so that keep-alive clients reconnect to another instance.
            const headers = { ...baseHeaders, ...retryAfterHeaders(error.code), connection: 'close' };
            return fixed(errorResponse(error, headers), 'close', () => finish(outcomeOf(error)));
          }
          const tracked = lifecycle.begin(req.signal);
          untrack = tracked.end;
          req = { ...req, signal: tracked.signal };
        }
        switch (route.kind) {
          case 'health':
            return fixed(jsonResponse(200, { status: 'ok' }, baseHeaders), 'drain', () => finish(plain('ok', 200)));
          case 'openapi':
            return fixed(jsonResponse(200, OPENAPI_DOCUMENT, baseHeaders), 'drain', () => finish(plain('ok', 200)));
          case 'ready': {
            const state: ReadinessState = lifecycle?.draining
              ? { ready: false, reason: 'draining' }
              : ((await options.readiness?.check()) ?? { ready: true });
            const status = state.ready ? 200 : 503;
            const body = state.ready ? { status: 'ready' } : { status: 'not ready', reason: state.reason };
            return fixed(jsonResponse(status, body, baseHeaders), 'drain', () =>
              finish(plain(state.ready ? 'ready' : state.reason, status)),
            );
          }
          case 'metrics': {
            if (!metrics?.render) {
              const error = new UploadError('NOT_FOUND', `No route for ${req.method} ${req.path}`);
              return fixed(errorResponse(error, baseHeaders), 'drain', () => finish(outcomeOf(error)));
            }
            const text = await metrics.render();
            const head = {
              statusCode: 200,
              headers: { 'content-type': text.contentType, 'cache-control': 'no-store', ...baseHeaders },
            };
            return fixed({ head, body: text.body }, 'drain', () => finish(plain('ok', 200)));
          }
          case 'error':
            return fixed(errorResponse(route.error, { ...baseHeaders, ...route.headers }), 'close', () =>
              finish(outcomeOf(route.error)),
            );
          case 'session': {
            const res = await handleSessionRoute(route, req.body, options.sessions, {
              uploadedBy: caller,
              ...(options.prefixByCaller ? { keyPrefix: callerPrefix(caller) } : {}),
            });
            return fixed(
              { head: { ...res.head, headers: { ...res.head.headers, ...baseHeaders } }, body: res.body },
              // A refused body (too large) was not read to its end: close rather than drain it.
              res.error?.code === 'PAYLOAD_TOO_LARGE' ? 'close' : 'drain',
              () => finish({ ...plain(res.outcome, res.head.statusCode), action: route.action }, {}, res.error),
            );
          }
          case 'upload':
            return await handleUpload(req, caller, logger, baseHeaders, finish);
        }
      } catch (err) {
        // Last resort: the routes never throw, so this is a bug.
        logger.error('request failed', { err });
        const error = new UploadError('INTERNAL', 'Internal error', { cause: err });
        return fixed(errorResponse(error, baseHeaders), 'close', () => finish(outcomeOf(error), {}, error));
      }
    },
  };

  async function handleUpload(
    req: AppRequest,
    caller: string,
    logger: Logger,
    baseHeaders: Record<string, string>,
    finish: (
      fields: Omit<RequestRecord, 'route' | 'ms' | 'caller'>,
      logExtra?: Record<string, unknown>,
      err?: UploadError,
    ) => void,
  ): Promise<AppResponse> {
    if (req.maxBodyBytes !== undefined && req.bodyBytes !== undefined && req.bodyBytes > req.maxBodyBytes) {
      const error = new UploadError(
        'PAYLOAD_TOO_LARGE',
        `Request body is ${req.bodyBytes} bytes; this endpoint takes at most ${req.maxBodyBytes}. ` +
          'Send larger files through the direct-to-S3 lane (POST /uploads/sessions).',
      );
      return fixed(errorResponse(error, baseHeaders), 'close', () => finish(outcomeOf(error), { bodyBytes: req.bodyBytes }));
    }

    // A keyed request is admitted (it owns the key, or replays its answer) or refused (409, 400).
    const idempotencyKey = req.headers[IDEMPOTENCY_KEY_HEADER];
    const admission =
      options.idempotency && idempotencyKey !== undefined ? await options.idempotency.admit(caller, idempotencyKey) : undefined;
    if (admission?.kind === 'refused') {
      const { error, outcome } = admission;
      return fixed(errorResponse(error, { ...baseHeaders, ...admission.headers }), 'close', () =>
        finish(outcomeOf(error), outcome ? { idempotency: outcome } : {}, error),
      );
    }

    let terminal: UploadEvent | undefined;
    let filesStarted = 0;
    const keyPrefix = options.prefixByCaller ? options.upload.keyPrefix + callerPrefix(caller) : options.upload.keyPrefix;
    const start = (deps: UploadDeps) =>
      uploadFiles(
        { headers: req.headers, body: req.body, signal: req.signal, metadata: { [UPLOADED_BY_METADATA_KEY]: caller } },
        deps,
      );
    const admitted: AdmittedUpload | undefined =
      admission && runAdmitted(admission, { ...options.upload, keyPrefix, logger }, start);
    const events = admitted ? admitted.events : start({ ...options.upload, keyPrefix, logger });
    const pieces = renderUpload(events, responseMode(req.headers['accept']), (e) => {
      if (e.type === 'file-started') filesStarted++;
      if (e.type === 'done' || e.type === 'error') terminal = e;
    })[Symbol.asyncIterator]();

    const report = (status: number): void => {
      const idempotency = admitted?.outcome();
      // A replay stores nothing: its files are the first request's.
      const files: StoredFile[] = terminal?.type === 'done' && idempotency !== 'replayed' ? terminal.files : [];
      const error = terminal?.type === 'error' ? new UploadError(terminal.code, terminal.message) : undefined;
      finish(
        {
          outcome: terminal?.type === 'error' ? terminal.code : (terminal?.type ?? 'unknown'),
          status,
          filesStored: files.length,
          bytesStored: files.reduce((n, f) => n + f.size, 0),
          filesAborted: terminal?.type === 'done' ? 0 : filesStarted,
        },
        {
          files: files.map((f) => ({ key: f.key, size: f.size })),
          bodyBytes: req.bodyBytes ?? contentLength(req.headers),
          ...(idempotency ? { idempotency } : {}),
        },
        error,
      );
    };

    const first = await pieces.next();
    if (first.done || !('head' in first.value)) {
      // The pipeline always ends with a terminal event, so this is a bug: answer 500.
      const error = new UploadError('INTERNAL', 'Internal error');
      return fixed(errorResponse(error, baseHeaders), 'drain', () => report(500));
    }
    const head = first.value.head;
    return {
      status: head.statusCode,
      headers: {
        ...head.headers,
        ...baseHeaders,
        ...(admitted?.outcome() === 'replayed' ? { [IDEMPOTENT_REPLAYED_HEADER]: 'true' } : {}),
      },
      unreadBody: 'drain',
      body: (async function* () {
        try {
          for (let piece = await pieces.next(); !piece.done; piece = await pieces.next()) {
            if ('chunk' in piece.value) yield piece.value.chunk;
          }
        } finally {
          // Stopping early (client gone) aborts the uploads and waits for their clean-up.
          await pieces.return?.(undefined);
          report(head.statusCode);
        }
      })(),
    };
  }
}

function contentLength(headers: AppRequest['headers']): number | undefined {
  const raw = headers['content-length'];
  return raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined;
}

function plain(outcome: string, status: number): Omit<RequestRecord, 'route' | 'ms' | 'caller'> {
  return { outcome, status, filesStored: 0, bytesStored: 0, filesAborted: 0 };
}

function outcomeOf(err: UploadError): Omit<RequestRecord, 'route' | 'ms' | 'caller'> {
  return plain(err.code, err.status);
}

/** A response whose body is known: the log line is written once it has been handed over. */
function fixed(
  response: { head: ResponseHead; body: string },
  unreadBody: AppResponse['unreadBody'],
  done: () => void,
): AppResponse {
  return {
    status: response.head.statusCode,
    headers: response.head.headers,
    unreadBody,
    body: (async function* () {
      try {
        if (response.body) yield response.body;
      } finally {
        done();
      }
    })(),
  };
}

/** The abort reason when the client went away (node:http socket closed). */
export function clientClosed(): UploadError {
  return new UploadError('CLIENT_CLOSED_REQUEST', 'The client closed the connection');
}

/** The abort reason when the platform's deadline nears (Lambda). */
export function deadlineExceeded(budgetMs: number): UploadError {
  return new UploadError('TIMEOUT', `The upload did not finish within ${budgetMs} ms`);
}
