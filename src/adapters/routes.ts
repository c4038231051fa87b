/**
 * The routes, shared by every adapter so the Lambda function and the Node server answer the
 * same requests the same way.
 */
import { UploadError } from '../core/errors.ts';
import { matchSessionRoute, type SessionRoute } from './session-routes.ts';

export const UPLOADS_PATH = '/uploads';
export const HEALTH_PATH = '/healthz';

export type Route =
  { kind: 'upload' } | { kind: 'health' } | SessionRoute | { kind: 'error'; error: UploadError; headers: Record<string, string> };

const ALLOWED: Record<string, string> = { [UPLOADS_PATH]: 'POST', [HEALTH_PATH]: 'GET, HEAD' };

export function matchRoute(method: string, path: string): Route {
  const m = method.toUpperCase();
  if (path === UPLOADS_PATH && m === 'POST') return { kind: 'upload' };
  if (path === HEALTH_PATH && (m === 'GET' || m === 'HEAD')) return { kind: 'health' };
  const session = matchSessionRoute(m, path);
  if (session) return session;
  const allow = ALLOWED[path];
  if (allow) {
    return { kind: 'error', error: new UploadError('METHOD_NOT_ALLOWED', `Use ${allow} on ${path}`), headers: { allow } };
  }
  return { kind: 'error', error: new UploadError('NOT_FOUND', `No route for ${m} ${path}`), headers: {} };
}
