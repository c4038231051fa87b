/**
 * Who is calling. A principal the platform already verified (the IAM caller of a Function URL
 * or of an API Gateway route with `aws_iam`, or an API key id) comes in with the request;
 * otherwise, when bearer tokens are configured, the token names the caller. Tokens are hashed
 * before comparing, so the time taken says nothing about the token's length or how much of
 * it matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { UploadError } from '../core/errors.ts';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Caller recorded when no authentication is configured and the platform names nobody. */
export const ANONYMOUS_CALLER = 'anonymous';

export type Authenticate = (
  platformCaller: string | undefined,
  authorization: string | undefined,
) => { caller: string } | { error: UploadError };

/**
 * `tokens` maps a caller name to its bearer token; empty means open access. The caller of a
 * token is recorded as `token:<name>`.
 */
export function createAuthenticator(tokens: Readonly<Record<string, string>>): Authenticate {
  const entries = Object.entries(tokens).map(([name, token]) => ({ caller: `token:${name}`, hash: digest(token) }));
  return (platformCaller, authorization) => {
    if (platformCaller !== undefined) return { caller: platformCaller };
    if (entries.length === 0) return { caller: ANONYMOUS_CALLER };
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (m) {
      const presented = digest(m[1]!);
      // Compare against every token so the time does not depend on which one matched.
      let found: string | undefined;
      for (const entry of entries) if (timingSafeEqual(presented, entry.hash)) found ??= entry.caller;
      if (found) return { caller: found };
    }
    return {
      error: new UploadError('UNAUTHORIZED', m ? 'Invalid bearer token' : 'Missing bearer token (Authorization: Bearer <token>)'),
    };
  };
}

/**
 * The key prefix of a caller, `<name>/`, stable across its sessions: an assumed role's ARN
 * names the session too (`assumed-role/<role>/<session>`), so the prefix keeps account and
 * role only. Every character outside `A-Za-z0-9._-` becomes `-`, so a prefix never holds
 * `/` or `..` of its own.
 */
export function callerPrefix(caller: string): string {
  let name = caller.replace(/^token:/, '');
  const arn = /^arn:[^:]+:(?:sts|iam)::(\d+):(.+)$/.exec(caller);
  if (arn) {
    const [kind, ...rest] = arn[2]!.split('/');
    // assumed-role/<role>/<session>: the session part changes with every credential refresh.
    const who = kind === 'assumed-role' ? rest[0] : rest.at(-1);
    name = `${arn[1]}-${who ?? kind}`;
  }
  return `${name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^\.+/, '-')}/`;
}
