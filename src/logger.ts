import type { LogLevel } from './config.ts';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` (request id, correlation id, ...) to every line. */
  child(fields: Record<string, unknown>): Logger;
}

/**
 * Errors as plain JSON: name, message, code, status and the cause chain; never file bytes,
 * headers or credentials. An AWS SDK error adds what it takes to find the call on the store's
 * side: the operation (set by src/storage/s3-client.ts), its HTTP status, the S3 request ids
 * (`x-amz-request-id`, `x-amz-id-2`) and the attempts made.
 */
export function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & {
    code?: unknown;
    operation?: unknown;
    $fault?: unknown;
    $metadata?: { httpStatusCode?: number; requestId?: string; extendedRequestId?: string; attempts?: number };
  };
  const out: Record<string, unknown> = { name: e.name, message: e.message };
  if (e.code !== undefined) out['code'] = e.code;
  if (typeof e.operation === 'string') out['operation'] = e.operation;
  const meta = e.$metadata;
  if (meta?.httpStatusCode !== undefined) out['httpStatus'] = meta.httpStatusCode;
  if (meta?.requestId !== undefined) out['s3RequestId'] = meta.requestId;
  if (meta?.extendedRequestId !== undefined) out['s3ExtendedRequestId'] = meta.extendedRequestId;
  if (meta?.attempts !== undefined) out['attempts'] = meta.attempts;
  if (typeof e.$fault === 'string') out['fault'] = e.$fault;
  if (e.stack) out['stack'] = e.stack;
  if (e.cause !== undefined && depth < 4) out['cause'] = serializeError(e.cause, depth + 1);
  return out;
}

/**
 * Structured JSON logs, one object per line (what CloudWatch Logs Insights and most log
 * shippers parse). `write` is injectable for tests.
 */
export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
): Logger {
  const min = RANK[level];
  const log = (lvl: Exclude<LogLevel, 'silent'>, message: string, fields?: Record<string, unknown>): void => {
    if (RANK[lvl] < min) return;
    const entry: Record<string, unknown> = { level: lvl, time: new Date().toISOString(), message, ...base };
    if (fields) for (const [k, v] of Object.entries(fields)) entry[k] = k === 'err' ? serializeError(v) : v;
    write(JSON.stringify(entry));
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}
