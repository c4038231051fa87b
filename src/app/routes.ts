/**
 * The route table: one place that knows every path the service answers, for every platform.
 *
 *   POST   /uploads                          upload     201 (JSON) or 200 (NDJSON)
 *   POST   /uploads/sessions                 create     201 UploadSession
 *   POST   /uploads/sessions/{id}/parts      sign more  200 SignPartsResult
 *   POST   /uploads/sessions/{id}/complete   complete   201 (200 when already completed)
 *   DELETE /uploads/sessions/{id}            abort      204
 *   GET    /healthz                          liveness   200
 *   GET    /openapi.json                     contract   200 (src/app/openapi.ts)
 *   GET    /readyz                           readiness  200, 503 while draining or the store is unreachable
 *   GET    /metrics                          Prometheus text (Node server; 404 where none is kept)
 */
import { UploadError } from '../core/errors.ts';
import { SESSIONS_PATH } from '../protocol.ts';

export const UPLOADS_PATH = '/uploads';
export const HEALTH_PATH = '/healthz';
export const OPENAPI_PATH = '/openapi.json';
export const READY_PATH = '/readyz';
export const METRICS_PATH = '/metrics';

export type SessionAction = 'create' | 'parts' | 'complete' | 'abort';

export type Route =
  | { kind: 'upload' }
  | { kind: 'health' }
  | { kind: 'openapi' }
  | { kind: 'ready' }
  | { kind: 'metrics' }
  | { kind: 'session'; action: SessionAction; /** The session id from the path ('' for create). */ id: string }
  | { kind: 'error'; error: UploadError; headers: Record<string, string> };

export type SessionRoute = Extract<Route, { kind: 'session' }>;

/** Routes that answer without credentials (probes, and the contract callers generate clients from). */
export const OPEN_ROUTES: ReadonlySet<Route['kind']> = new Set(['health', 'ready', 'openapi']);

const ID = '([A-Za-z0-9_.-]{1,8192})';

type Entry = { pattern: RegExp; method: string; route: (id: string) => Route };

export const TABLE: readonly Entry[] = [
  { pattern: /^\/uploads$/, method: 'POST', route: () => ({ kind: 'upload' }) },
  { pattern: /^\/healthz$/, method: 'GET', route: () => ({ kind: 'health' }) },
  { pattern: /^\/openapi\.json$/, method: 'GET', route: () => ({ kind: 'openapi' }) },
  { pattern: /^\/readyz$/, method: 'GET', route: () => ({ kind: 'ready' }) },
  { pattern: /^\/metrics$/, method: 'GET', route: () => ({ kind: 'metrics' }) },
  { pattern: new RegExp(`^${SESSIONS_PATH}$`), method: 'POST', route: () => session('create', '') },
  { pattern: new RegExp(`^${SESSIONS_PATH}/${ID}/parts$`), method: 'POST', route: (id) => session('parts', id) },
  { pattern: new RegExp(`^${SESSIONS_PATH}/${ID}/complete$`), method: 'POST', route: (id) => session('complete', id) },
  { pattern: new RegExp(`^${SESSIONS_PATH}/${ID}$`), method: 'DELETE', route: (id) => session('abort', id) },
];

function session(action: SessionAction, id: string): Route {
  return { kind: 'session', action, id };
}

/** The route for a request; a 405 (with Allow) for a known path and another method; else 404. */
export function matchRoute(method: string, path: string): Route {
  const m = method.toUpperCase();
  for (const entry of TABLE) {
    const match = entry.pattern.exec(path);
    if (!match) continue;
    // HEAD is GET without a body (node:http drops the body; Lambda's front does too).
    if (m === entry.method || (m === 'HEAD' && entry.method === 'GET')) return entry.route(match[1] ?? '');
    const allow = entry.method === 'GET' ? 'GET, HEAD' : entry.method;
    return { kind: 'error', error: new UploadError('METHOD_NOT_ALLOWED', `Use ${allow} on ${path}`), headers: { allow } };
  }
  return { kind: 'error', error: new UploadError('NOT_FOUND', `No route for ${m} ${path}`), headers: {} };
}
