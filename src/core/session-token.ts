/**
 * Upload session ids: the session's facts (bucket, key, S3 upload id, size, part size, name,
 * type, declared SHA-256, expiry) signed with HMAC-SHA256, so the service needs no database
 * and a caller cannot point a session at another key, upload or size:
 *
 *     base64url(JSON claims) + "." + base64url(HMAC-SHA256(secret, "s3su-session.v1." + claims part))
 *
 * The claims are signed, not encrypted: they hold nothing the caller does not already know
 * (the S3 upload id alone grants nothing without S3 credentials).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { UploadError } from './errors.ts';

/** What a session id carries. Field names are part of the id format (version 1). */
export interface SessionClaims {
  v: 1;
  /** Bucket the upload goes to: an id from another deployment's bucket is refused. */
  bucket: string;
  key: string;
  uploadId: string;
  /** Declared size of the file, bytes. */
  size: number;
  /** Size of every part but the last, bytes. */
  partSize: number;
  contentType: string;
  filename: string;
  /** Declared SHA-256, lowercase hex. */
  sha256?: string;
  /** Expiry, Unix seconds. */
  exp: number;
}

/** Domain separation: this HMAC key signs nothing else in this format. */
const CONTEXT = 's3su-session.v1.';
/** Longest id accepted before any work (a few hundred bytes are normal). */
const MAX_ID_LENGTH = 8192;
const ID_FORMAT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/;

function mac(secret: string, claimsPart: string): Buffer {
  return createHmac('sha256', secret).update(CONTEXT).update(claimsPart).digest();
}

export function signSessionToken(claims: SessionClaims, secret: string): string {
  const claimsPart = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
  return `${claimsPart}.${mac(secret, claimsPart).toString('base64url')}`;
}

export interface VerifiedSession {
  claims: SessionClaims;
  /** True when the id is authentic but past its expiry (it may still be aborted). */
  expired: boolean;
}

const invalid = (why: string) => new UploadError('INVALID_SESSION', `Unknown upload session: ${why}`);

/**
 * Checks an id's signature (constant time) and shape. Throws INVALID_SESSION for anything
 * this service did not issue for `bucket`; an expired id is returned with `expired: true`.
 */
export function verifySessionToken(id: string, secret: string, bucket: string, nowSeconds: number): VerifiedSession {
  if (id.length > MAX_ID_LENGTH || !ID_FORMAT.test(id)) throw invalid('malformed id');
  const [claimsPart, sigPart] = id.split('.') as [string, string];
  const given = Buffer.from(sigPart, 'base64url');
  const expected = mac(secret, claimsPart);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw invalid('bad signature');
  let claims: SessionClaims;
  try {
    claims = JSON.parse(Buffer.from(claimsPart, 'base64url').toString('utf8')) as SessionClaims;
  } catch (err) {
    // Signed by us yet unreadable: only a bug (or a leaked secret) gets here.
    throw new UploadError('INVALID_SESSION', 'Unknown upload session: unreadable claims', { cause: err });
  }
  if (
    claims?.v !== 1 ||
    typeof claims.key !== 'string' ||
    typeof claims.uploadId !== 'string' ||
    !Number.isSafeInteger(claims.size) ||
    !Number.isSafeInteger(claims.partSize) ||
    claims.partSize <= 0 ||
    typeof claims.exp !== 'number'
  ) {
    throw invalid('unsupported id version');
  }
  if (claims.bucket !== bucket) throw invalid('issued for another bucket');
  return { claims, expired: nowSeconds >= claims.exp };
}
