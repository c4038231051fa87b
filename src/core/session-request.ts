/**
 * Validation of the JSON bodies of the session routes. Each body is checked whole: a key the
 * route does not know is a 400 naming it (a typo such as `feilds` must not be dropped in
 * silence, which would store an object without the metadata the caller meant to attach).
 */
import type { CompletedPart, CreateSessionRequest } from '../protocol.ts';
import { UploadError } from './errors.ts';
import { parseSha256 } from './file-checks.ts';

/** S3 allows at most 10,000 parts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
const MAX_PARTS = 10_000;
/** Longest file name accepted, UTF-8 bytes (it travels inside the session id, in URLs). */
const MAX_FILENAME_BYTES = 1024;
const CONTENT_TYPE_FORMAT = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*(\s*;.*)?$/;

export interface CreateInput {
  filename: string;
  size: number;
  contentType: string;
  sha256?: string;
  /** Caller metadata, in the order sent. */
  fields: Array<[string, string]>;
}

export interface FieldLimits {
  /** Most fields (config `UPLOAD_MAX_FIELDS`). */
  maxFields: number;
  /** Largest field value, UTF-8 bytes (config `UPLOAD_MAX_FIELD_BYTES`). */
  maxFieldBytes: number;
}

const badRequest = (message: string) => new UploadError('BAD_REQUEST', message);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Refuses the first key of `body` that is not in `known`. */
function refuseUnknownKeys(body: Record<string, unknown>, known: readonly string[], where: string): void {
  const unknown = Object.keys(body).find((k) => !known.includes(k));
  if (unknown !== undefined) {
    throw badRequest(`Unknown key ${JSON.stringify(unknown)} in ${where}; expected ${known.join(', ')}`);
  }
}

const CREATE_KEYS = ['filename', 'size', 'contentType', 'sha256', 'fields'] as const satisfies ReadonlyArray<
  keyof CreateSessionRequest
>;

/** `POST /uploads/sessions` body. */
export function parseCreate(body: unknown, limits: FieldLimits): CreateInput {
  if (!isObject(body)) throw badRequest('Expected a JSON object { filename, size, contentType?, sha256?, fields? }');
  refuseUnknownKeys(body, CREATE_KEYS, 'the session request');
  const { filename, size, contentType, sha256, fields } = body as Partial<Record<keyof CreateSessionRequest, unknown>>;
  if (typeof filename !== 'string') throw badRequest('filename must be a string');
  if (Buffer.byteLength(filename, 'utf8') > MAX_FILENAME_BYTES)
    throw badRequest(`filename is longer than ${MAX_FILENAME_BYTES} bytes`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    throw badRequest('size must be a whole number of bytes, at least 1 (send empty files with POST /uploads)');
  }
  const type = contentType === undefined ? 'application/octet-stream' : contentType;
  if (typeof type !== 'string' || type.length > 255 || !CONTENT_TYPE_FORMAT.test(type)) {
    throw badRequest('contentType must be a media type such as application/pdf');
  }
  const input: CreateInput = { filename, size, contentType: type, fields: parseFields(fields, limits) };
  if (sha256 !== undefined) {
    const hex = typeof sha256 === 'string' ? parseSha256(sha256) : undefined;
    if (hex === undefined) throw badRequest('sha256 must be 64 hex digits (or the base64 of 32 bytes)');
    input.sha256 = hex;
  }
  return input;
}

/**
 * `fields`: an object of string values, with the limits of the stream-through lane's text
 * fields (TOO_MANY_FIELDS, FIELD_TOO_LARGE), so both lanes accept the same metadata.
 */
function parseFields(fields: unknown, limits: FieldLimits): Array<[string, string]> {
  if (fields === undefined) return [];
  if (!isObject(fields)) throw badRequest('fields must be an object of text values, e.g. { "customer": "c-1" }');
  const entries = Object.entries(fields);
  if (entries.length > limits.maxFields) {
    throw new UploadError('TOO_MANY_FIELDS', `More than ${limits.maxFields} fields`);
  }
  return entries.map(([name, value]) => {
    if (typeof value !== 'string') throw badRequest(`Field ${JSON.stringify(name)} must be a string`);
    if (Buffer.byteLength(value, 'utf8') > limits.maxFieldBytes) {
      throw new UploadError('FIELD_TOO_LARGE', `Field ${JSON.stringify(name)} is larger than ${limits.maxFieldBytes} bytes`);
    }
    return [name, value];
  });
}

/** `POST /uploads/sessions/{id}/parts` body. */
export function parsePartNumbers(body: unknown, partCount: number): number[] {
  const list = isObject(body) ? body['partNumbers'] : undefined;
  if (!isObject(body) || !Array.isArray(list) || list.length === 0 || list.length > MAX_PARTS) {
    throw badRequest('Expected { partNumbers: [1, 2, ...] }');
  }
  refuseUnknownKeys(body, ['partNumbers'], 'the parts request');
  for (const n of list) {
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > partCount) {
      throw badRequest(`Part numbers must be whole numbers from 1 to ${partCount}`);
    }
  }
  return [...new Set(list as number[])];
}

/** `POST /uploads/sessions/{id}/complete` body: exactly parts 1..partCount. */
export function parseComplete(body: unknown, partCount: number): CompletedPart[] {
  const list = isObject(body) ? body['parts'] : undefined;
  if (!isObject(body) || !Array.isArray(list)) throw badRequest('Expected { parts: [{ partNumber, etag }, ...] }');
  refuseUnknownKeys(body, ['parts'], 'the complete request');
  const parts: CompletedPart[] = [];
  for (const p of list) {
    if (!isObject(p) || typeof p['partNumber'] !== 'number' || typeof p['etag'] !== 'string' || p['etag'].length > 256) {
      throw badRequest('Every part needs a partNumber (number) and an etag (string)');
    }
    refuseUnknownKeys(p, ['partNumber', 'etag'], 'a part');
    parts.push({ partNumber: p['partNumber'], etag: p['etag'] });
  }
  parts.sort((a, b) => a.partNumber - b.partNumber);
  const numbers = parts.map((p) => p.partNumber);
  const missing: number[] = [];
  for (let n = 1, i = 0; n <= partCount; n++) {
    while (i < numbers.length && numbers[i]! < n) i++;
    if (numbers[i] !== n) missing.push(n);
  }
  const unexpected = numbers.filter((n, i) => !Number.isInteger(n) || n < 1 || n > partCount || numbers[i - 1] === n);
  if (missing.length || unexpected.length) {
    const list = (xs: number[]) => xs.slice(0, 10).join(', ') + (xs.length > 10 ? ', ...' : '');
    const why = [
      missing.length ? `missing part${missing.length > 1 ? 's' : ''} ${list(missing)}` : '',
      unexpected.length ? `unexpected or repeated part number${unexpected.length > 1 ? 's' : ''} ${list(unexpected)}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    throw new UploadError('PART_MISMATCH', `The session has parts 1 to ${partCount}: ${why}`);
  }
  return parts;
}
