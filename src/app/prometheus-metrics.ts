/**
 * The app's metrics port as Prometheus metrics (prom-client), served by the app at
 * `GET /metrics` on the Node server. Kept apart from the EMF port (metrics.ts) so the Lambda
 * bundle never loads prom-client. Counters move once per finished request (RequestRecord);
 * gauges are read when scraped, from the objects that hold the state.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MemoryBudget } from '../core/memory-budget.ts';
import type { AppMetrics, RequestRecord } from './app.ts';
import type { Lifecycle } from './lifecycle.ts';

export interface PrometheusMetricsOptions {
  /** The process's memory budget, for the held and waiting gauges. */
  memoryBudget?: MemoryBudget;
  /** The app's in-flight requests. */
  lifecycle?: Lifecycle;
  /** Node's process metrics (RSS, heap, event-loop lag, GC) too. Default true. */
  processMetrics?: boolean;
}

export interface PrometheusMetrics extends AppMetrics {
  /** Counts an S3 call that finally failed: wire it to the S3 client's `onError`. */
  recordS3Error(operation: string, err: unknown): void;
  readonly registry: Registry;
}

const PREFIX = 's3_stream_upload_';

export function createPrometheusMetrics(options: PrometheusMetricsOptions = {}): PrometheusMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: `${PREFIX}requests_total`,
    help: 'Requests finished, by route (session routes as session_<action>) and outcome (done, an error code, ...)',
    labelNames: ['route', 'outcome'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${PREFIX}request_duration_seconds`,
    help: 'Time from the request to the end of its answer, by route',
    labelNames: ['route'] as const,
    // Uploads run from milliseconds (a small file) to many minutes (GiBs on a slow link).
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [registry],
  });
  const filesStored = new Counter({
    name: `${PREFIX}files_stored_total`,
    help: 'Files stored by POST /uploads (requests that succeeded)',
    registers: [registry],
  });
  const bytesStored = new Counter({
    name: `${PREFIX}stored_bytes_total`,
    help: 'Bytes of the files stored by POST /uploads',
    registers: [registry],
  });
  const filesAborted = new Counter({
    name: `${PREFIX}files_aborted_total`,
    help: 'Files whose upload started and was aborted because their request failed',
    registers: [registry],
  });
  const s3Errors = new Counter({
    name: `${PREFIX}s3_errors_total`,
    help: 'S3 calls that failed after the SDK retries, by operation and SDK error name',
    labelNames: ['operation', 'error'] as const,
    registers: [registry],
  });
  const { lifecycle, memoryBudget } = options;
  if (lifecycle) {
    new Gauge({
      name: `${PREFIX}requests_in_flight`,
      help: 'Upload and session requests taken and not yet answered to their end',
      registers: [registry],
      collect() {
        this.set(lifecycle.inFlight);
      },
    });
    new Gauge({
      name: `${PREFIX}draining`,
      help: '1 while the server drains before it exits',
      registers: [registry],
      collect() {
        this.set(lifecycle.draining ? 1 : 0);
      },
    });
  }
  if (memoryBudget) {
    new Gauge({
      name: `${PREFIX}memory_budget_in_use_bytes`,
      help: 'Bytes of the upload memory budget (UPLOAD_MEMORY_BYTES) reserved by files in flight',
      registers: [registry],
      collect() {
        this.set(memoryBudget.inUse);
      },
    });
    new Gauge({
      name: `${PREFIX}memory_budget_waiting_files`,
      help: 'Files waiting for the upload memory budget',
      registers: [registry],
      collect() {
        this.set(memoryBudget.waiting);
      },
    });
  }

  return {
    registry,
    record(r: RequestRecord) {
      const route = r.action ? `${r.route}_${r.action}` : r.route;
      requests.inc({ route, outcome: r.outcome });
      duration.observe({ route }, r.ms / 1000);
      // RequestRecord counts stored files only: a failed request reports none (they were deleted).
      if (r.filesStored > 0) filesStored.inc(r.filesStored);
      if (r.bytesStored > 0) bytesStored.inc(r.bytesStored);
      if (r.filesAborted > 0) filesAborted.inc(r.filesAborted);
    },
    recordS3Error(operation, err) {
      const name = (err as { name?: unknown } | undefined)?.name;
      s3Errors.inc({ operation, error: typeof name === 'string' ? name : 'unknown' });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
