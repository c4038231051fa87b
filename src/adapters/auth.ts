/**
 * Bearer-token check for the Node server (`UPLOAD_AUTH_TOKEN`). Both sides are hashed first
 * so the comparison takes the same time whatever the token's length or how much of it matches.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { UploadError } from '../core/errors.ts';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Returns a checker for `Authorization` header values; `undefined` token means open access. */
export function createBearerCheck(token: string | undefined): (authorization: string | undefined) => UploadError | undefined {
  if (token === undefined) return () => undefined;
  const expected = digest(token);
  return (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (m && timingSafeEqual(digest(m[1]!), expected)) return undefined;
    return new UploadError('UNAUTHORIZED', m ? 'Invalid bearer token' : 'Missing bearer token (Authorization: Bearer <token>)');
  };
}
