/**
 * Pure converters from Lambda HTTP events to what the core takes. Two shapes reach the
 * function: API Gateway REST proxy events (payload format 1.0) and Function URL events
 * (payload format 2.0, the same as HTTP API). Neither streams the request: the body is
 * already in memory, base64-encoded for binary media types.
 */
import { Readable } from 'node:stream';
import type { APIGatewayProxyEvent, APIGatewayProxyEventV2 } from 'aws-lambda';

export type LambdaHttpEvent = APIGatewayProxyEvent | APIGatewayProxyEventV2;

export interface HttpRequest {
  method: string;
  /** Path without the stage, e.g. `/uploads`. */
  path: string;
  /** Header names lowercased; repeated headers joined with `, `. */
  headers: Record<string, string>;
  /** Decoded body length, bytes (known without decoding). */
  bodyBytes: number;
  /** The decoded body, produced in slices as it is read. */
  body: Readable;
  /** Payload format, for logs: `1.0` (REST) or `2.0` (Function URL / HTTP API). */
  version: '1.0' | '2.0';
}

/**
 * Base64 characters decoded per slice (a multiple of 4, so slices decode independently):
 * 64 KiB of input -> 48 KiB of bytes. The whole decoded body never exists at once next to the
 * event's string: that is the "fixed memory" we can have inside Lambda.
 */
const BASE64_SLICE = 64 * 1024;
/** UTF-16 code units per slice of a plain-text body. */
const TEXT_SLICE = 32 * 1024;

function isV2(event: LambdaHttpEvent): event is APIGatewayProxyEventV2 {
  return (event as APIGatewayProxyEventV2).version === '2.0';
}

export function toHttpRequest(event: LambdaHttpEvent): HttpRequest {
  const headers: Record<string, string> = {};
  if (isV2(event)) {
    for (const [k, v] of Object.entries(event.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = v;
    // Format 2.0 moves cookies out of the headers.
    if (event.cookies?.length) headers['cookie'] = event.cookies.join('; ');
  } else {
    // Format 1.0 has both; multiValueHeaders is the complete one when present.
    for (const [k, v] of Object.entries(event.headers ?? {})) if (v !== undefined) headers[k.toLowerCase()] = v;
    for (const [k, v] of Object.entries(event.multiValueHeaders ?? {})) if (v?.length) headers[k.toLowerCase()] = v.join(', ');
  }
  const raw = event.body ?? '';
  const base64 = event.isBase64Encoded === true;
  return {
    method: isV2(event) ? event.requestContext.http.method : event.httpMethod,
    path: normalizePath(isV2(event) ? event.rawPath : event.path),
    headers,
    bodyBytes: base64 ? base64DecodedLength(raw) : Buffer.byteLength(raw, 'utf8'),
    body: Readable.from(base64 ? decodeBase64Slices(raw) : encodeTextSlices(raw), { objectMode: false }),
    version: isV2(event) ? '2.0' : '1.0',
  };
}

function normalizePath(path: string | undefined): string {
  const p = (path ?? '/').replace(/\/{2,}/g, '/');
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}

/** Exact decoded size of a base64 string, without decoding it. */
export function base64DecodedLength(b64: string): number {
  let len = b64.length;
  while (len > 0 && (b64[len - 1] === '=' || b64[len - 1] === '\n' || b64[len - 1] === '\r')) len--;
  return Math.floor((len * 3) / 4);
}

export function* decodeBase64Slices(b64: string, slice = BASE64_SLICE): Generator<Buffer> {
  for (let i = 0; i < b64.length; i += slice) {
    const chunk = Buffer.from(b64.slice(i, i + slice), 'base64');
    if (chunk.length) yield chunk;
  }
}

export function* encodeTextSlices(text: string, slice = TEXT_SLICE): Generator<Buffer> {
  for (let i = 0; i < text.length;) {
    let end = Math.min(i + slice, text.length);
    // Never split a surrogate pair between two slices.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield Buffer.from(text.slice(i, end), 'utf8');
    i = end;
  }
}

/**
 * The caller the platform verified: the IAM principal's ARN (Function URL with AWS_IAM, or a
 * REST route with `aws_iam`), else the API key's id (never its value), else undefined.
 */
export function callerOf(event: LambdaHttpEvent): string | undefined {
  if (isV2(event)) {
    const iam = (event.requestContext as { authorizer?: { iam?: { userArn?: string | null } } }).authorizer?.iam;
    return iam?.userArn ?? undefined;
  }
  const identity = event.requestContext?.identity;
  if (identity?.userArn) return identity.userArn;
  if (identity?.apiKeyId) return `api-key:${identity.apiKeyId}`;
  return undefined;
}
