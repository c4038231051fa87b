/**
 * The OpenAPI 3.1 description of the whole HTTP contract, served at `GET /openapi.json` and
 * written to the repo's `openapi.json` (`npm run openapi`) for callers to generate clients
 * from. It is built in TypeScript rather than kept as a hand-edited JSON file so that codes,
 * statuses, content types, paths and limits come from the modules that use them, and so that
 * it is bundled into the server and the function with no file to read at run time.
 *
 * What keeps it honest is not this file but the tests: every response of the contract suite
 * (all transports) is validated against it (status documented for that operation, content
 * type, headers, body and each NDJSON line), and ERROR_STATUS must equal the codes listed
 * here (test/unit/app/openapi.test.ts, test/helpers/openapi-conformance.ts).
 */
import { BUSY_RETRY_AFTER_SECONDS } from '../core/memory-budget.ts';
import {
  ERROR_STATUS,
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  NDJSON_CONTENT_TYPE,
  SESSIONS_PATH,
  type ErrorCode,
} from '../protocol.ts';
import { HEALTH_PATH, METRICS_PATH, OPENAPI_PATH, READY_PATH, UPLOADS_PATH } from './routes.ts';
import { MAX_SESSION_BODY_BYTES } from './session-routes.ts';

/** Version of the HTTP contract (the package's version). */
export const API_VERSION = '0.1.0';

/** What each code means to a caller. A Record, so that a code added to ERROR_STATUS must be described here. */
const CODE_MEANING: Record<ErrorCode, string> = {
  UNSUPPORTED_MEDIA_TYPE: 'the body is not `multipart/form-data`, or has no boundary',
  UNSUPPORTED_FILE_TYPE: "a file's type is not allowed (`UPLOAD_ALLOWED_TYPES`), or its first bytes contradict it",
  CHECKSUM_MISMATCH: "a file's SHA-256 differs from the `sha256` field sent before it; nothing is stored",
  MALFORMED_MULTIPART: 'the multipart body cannot be parsed (truncated, bad part header, part without a name)',
  NO_FILES: 'the request held no file part',
  BAD_REQUEST: 'a malformed header or `sha256` field, or a session body that is not the JSON described here',
  UNAUTHORIZED: 'bearer tokens are configured (Node server) and the token is missing or wrong',
  NOT_FOUND: 'no such route; or the session routes are not enabled (no session secret)',
  METHOD_NOT_ALLOWED: 'the path exists, the method does not (see `Allow`)',
  FILE_TOO_LARGE: 'a file is larger than `UPLOAD_MAX_FILE_BYTES`',
  TOO_MANY_FILES: 'more file parts than `UPLOAD_MAX_FILES`',
  TOO_MANY_FIELDS: 'more text fields than `UPLOAD_MAX_FIELDS`',
  FIELD_TOO_LARGE: 'a text field value is larger than `UPLOAD_MAX_FIELD_BYTES`',
  PAYLOAD_TOO_LARGE: `the body is larger than allowed (\`UPLOAD_MAX_TOTAL_BYTES\`; Lambda's payload; ${MAX_SESSION_BODY_BYTES} bytes of session JSON)`,
  INVALID_SESSION: 'a session id this service did not issue, tampered with, or aborted',
  SESSION_EXPIRED: 'the session is past `expiresAt`; its upload was aborted: start a new one',
  SIZE_MISMATCH: 'the parts (or the completed object) do not hold the declared size',
  PART_MISMATCH: 'a part is missing, extra, of the wrong size, or has another ETag',
  CLIENT_CLOSED_REQUEST: 'the caller went away before the answer (logged only: never sent to anyone)',
  INTERNAL: 'a bug; details are logged, never sent',
  STORAGE_FAILED: 'S3 refused or failed the operation (the message names the S3 error); retry later',
  BUSY: `the upload memory budget is spent and enough files wait already; retry after \`Retry-After\` (${BUSY_RETRY_AFTER_SECONDS} s)`,
  SHUTTING_DOWN:
    'the Node server is draining before it exits: retry after `Retry-After` (another instance takes it); an upload ' +
    'still running at the end of the drain time is aborted with it (nothing stored)',
  TIMEOUT: "Lambda: the upload did not finish before the function's deadline; nothing is stored",
  IDEMPOTENCY_IN_PROGRESS:
    'a request with the same `Idempotency-Key` from this caller is still running; retry after `Retry-After`',
  IDEMPOTENCY_KEY_REUSED: 'this caller used the `Idempotency-Key` for a different request: final, use a new key',
};

/** Codes in ERROR_STATUS that no response carries (kept in the enum: logs and metrics use them). */
const UNSENT_CODES: readonly ErrorCode[] = ['CLIENT_CLOSED_REQUEST'];
/** Codes of the route table itself, answered for paths and methods no operation has. */
const ROUTE_CODES: readonly ErrorCode[] = ['NOT_FOUND', 'METHOD_NOT_ALLOWED'];

/** Every operation can answer these: the last-resort 500 and, where credentials are required, 401. */
const COMMON_CODES: readonly ErrorCode[] = ['INTERNAL'];
const AUTH_CODES: readonly ErrorCode[] = ['UNAUTHORIZED'];
const SESSION_COMMON: readonly ErrorCode[] = [...AUTH_CODES, ...COMMON_CODES, 'NOT_FOUND', 'STORAGE_FAILED', 'SHUTTING_DOWN'];

/**
 * The error codes each operation answers, by operationId: the documented statuses are
 * derived from these through ERROR_STATUS, and each status's body lists exactly its codes.
 */
export const OPERATION_CODES = {
  upload: [
    ...AUTH_CODES,
    ...COMMON_CODES,
    'BAD_REQUEST',
    'MALFORMED_MULTIPART',
    'NO_FILES',
    'FILE_TOO_LARGE',
    'TOO_MANY_FILES',
    'TOO_MANY_FIELDS',
    'FIELD_TOO_LARGE',
    'PAYLOAD_TOO_LARGE',
    'UNSUPPORTED_MEDIA_TYPE',
    'UNSUPPORTED_FILE_TYPE',
    'CHECKSUM_MISMATCH',
    'IDEMPOTENCY_IN_PROGRESS',
    'IDEMPOTENCY_KEY_REUSED',
    'STORAGE_FAILED',
    'BUSY',
    'SHUTTING_DOWN',
    'TIMEOUT',
  ],
  createSession: [
    ...SESSION_COMMON,
    'BAD_REQUEST',
    'PAYLOAD_TOO_LARGE',
    'FILE_TOO_LARGE',
    'TOO_MANY_FIELDS',
    'FIELD_TOO_LARGE',
    'UNSUPPORTED_FILE_TYPE',
  ],
  signSessionParts: [...SESSION_COMMON, 'BAD_REQUEST', 'PAYLOAD_TOO_LARGE', 'INVALID_SESSION', 'SESSION_EXPIRED'],
  completeSession: [
    ...SESSION_COMMON,
    'BAD_REQUEST',
    'PAYLOAD_TOO_LARGE',
    'INVALID_SESSION',
    'SESSION_EXPIRED',
    'FILE_TOO_LARGE',
    'SIZE_MISMATCH',
    'PART_MISMATCH',
    'UNSUPPORTED_FILE_TYPE',
  ],
  abortSession: [...SESSION_COMMON, 'INVALID_SESSION'],
  getHealth: [...COMMON_CODES],
  getReady: [...COMMON_CODES],
  getMetrics: [...AUTH_CODES, ...COMMON_CODES, 'NOT_FOUND'],
  getOpenApi: [...COMMON_CODES],
} satisfies Record<string, readonly ErrorCode[]>;

export type OperationId = keyof typeof OPERATION_CODES;

/** Every code in the document's `ErrorCode` enum, in ERROR_STATUS order. */
export function documentedCodes(): ErrorCode[] {
  const listed = new Set<ErrorCode>([...Object.values(OPERATION_CODES).flat(), ...ROUTE_CODES, ...UNSENT_CODES]);
  return (Object.keys(ERROR_STATUS) as ErrorCode[]).filter((c) => listed.has(c));
}

type Json = Record<string, unknown>;
const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const str = (description: string, extra: Json = {}): Json => ({ type: 'string', description, ...extra });
const int = (description: string, minimum = 0): Json => ({ type: 'integer', minimum, description });
const object = (properties: Record<string, Json>, required: string[], description?: string): Json => ({
  type: 'object',
  ...(description ? { description } : {}),
  properties,
  required,
  additionalProperties: false,
});

const JSON_MEDIA = 'application/json';
/** The session id in the path: what the route table matches (routes.ts). */
const SESSION_ID_PATTERN = '^[A-Za-z0-9_.-]{1,8192}$';

const storedFileProperties: Record<string, Json> = {
  field: str('Form field name of the file part (`file` for a session).'),
  filename: str("The caller's file name, decoded (RFC 5987 `filename*` wins), paths stripped; never the key."),
  key: str('The S3 object key: `UPLOAD_KEY_PREFIX` + a generated UUID + `/` + an ASCII rendering of the name.'),
  size: int('Bytes stored, counted while streaming and read back from S3.'),
  contentType: str('Content type of the part (default `application/octet-stream`).'),
  etag: str('The ETag S3 returned, quoted as S3 sends it (may be empty on some S3 implementations).'),
  bucket: str('Bucket the object was written to.'),
  sha256: {
    type: 'string',
    pattern: '^([0-9a-f]{64})?$',
    description:
      "Lowercase hex SHA-256 of the bytes when the request sent a `sha256` field (or `UPLOAD_SHA256=always`); sessions: the declared one; else ''.",
  },
  versionId: str('S3 version id (versioned buckets).'),
  checksumCRC32: str('CRC32 S3 computed (base64, `-N` suffix for a multipart object), when the SDK sent checksums.'),
  metadataOmitted: {
    type: 'array',
    items: { type: 'string' },
    description: "Fields that did not fit S3's 2 KB user-metadata budget or repeated a name (not stored as metadata).",
  },
};
const STORED_FILE_REQUIRED = ['field', 'filename', 'key', 'size', 'contentType', 'etag', 'bucket', 'sha256'];

const errorPayloadProperties: Record<string, Json> = {
  code: ref('ErrorCode'),
  message: str('For humans; may change. A generic text for 5xx codes other than STORAGE_FAILED, BUSY and TIMEOUT.'),
  deleted: {
    type: 'array',
    items: { type: 'string' },
    description: 'Keys of files this request had stored and then deleted because it failed.',
  },
  notDeleted: {
    type: 'array',
    items: { type: 'string' },
    description: 'Keys of files this request stored that could not be deleted after the failure.',
  },
};

function eventSchema(type: string, properties: Record<string, Json>, required: string[], description: string): Json {
  return object({ type: { const: type }, ...properties }, ['type', ...required], description);
}

const schemas: Record<string, Json> = {
  ErrorCode: {
    type: 'string',
    enum: documentedCodes(),
    description:
      'Stable error code; the contract (messages may change). Each maps to one status:\n\n' +
      documentedCodes()
        .map((c) => `- \`${c}\` (${ERROR_STATUS[c]}): ${CODE_MEANING[c]}`)
        .join('\n'),
  },
  ErrorPayload: object(errorPayloadProperties, ['code', 'message']),
  ErrorBody: object({ error: ref('ErrorPayload') }, ['error'], 'Body of every error answer that is not a streamed line.'),
  StoredFile: object(storedFileProperties, STORED_FILE_REQUIRED, 'One stored file.'),
  Fields: {
    type: 'object',
    description: 'Text fields of the request, in order; a repeated name collects its values in an array.',
    additionalProperties: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
  },
  UploadResult: object(
    { files: { type: 'array', items: ref('StoredFile') }, fields: ref('Fields') },
    ['files', 'fields'],
    'Every file stored: the answer of `POST /uploads` and of a completed session.',
  ),
  FileStartedEvent: eventSchema(
    'file-started',
    {
      field: storedFileProperties['field']!,
      filename: storedFileProperties['filename']!,
      key: storedFileProperties['key']!,
      contentType: storedFileProperties['contentType']!,
    },
    ['field', 'filename', 'key', 'contentType'],
    'A file part began; its upload to S3 starts.',
  ),
  FileProgressEvent: eventSchema(
    'file-progress',
    {
      field: storedFileProperties['field']!,
      key: storedFileProperties['key']!,
      bytes: int('Bytes of this file received so far.'),
    },
    ['field', 'key', 'bytes'],
    'At most once per MiB of a file.',
  ),
  FileStoredEvent: eventSchema('file-stored', storedFileProperties, STORED_FILE_REQUIRED, 'A file is stored and read back.'),
  DoneEvent: eventSchema(
    'done',
    { files: { type: 'array', items: ref('StoredFile') }, fields: ref('Fields') },
    ['files', 'fields'],
    'The last line of a successful request: the same as the JSON answer.',
  ),
  ErrorEvent: eventSchema(
    'error',
    errorPayloadProperties,
    ['code', 'message'],
    'The last line of a failed request: nothing it reported as stored is kept.',
  ),
  UploadEvent: {
    description:
      'One line of the NDJSON answer. Lines are `file-started`, `file-progress`, `file-stored` per file, then one `done` or one `error`.',
    oneOf: ['FileStartedEvent', 'FileProgressEvent', 'FileStoredEvent', 'DoneEvent', 'ErrorEvent'].map(ref),
    discriminator: {
      propertyName: 'type',
      mapping: {
        'file-started': '#/components/schemas/FileStartedEvent',
        'file-progress': '#/components/schemas/FileProgressEvent',
        'file-stored': '#/components/schemas/FileStoredEvent',
        done: '#/components/schemas/DoneEvent',
        error: '#/components/schemas/ErrorEvent',
      },
    },
  },
  UploadForm: {
    type: 'object',
    description:
      'Parts in order. Every file part (one with a `filename`) is stored as one object; text fields are echoed back, and ' +
      "those sent before a file become that file's S3 user metadata. A `sha256` text field (64 hex digits, or base64 of " +
      'the 32 bytes) right before a file is checked against that file.',
    additionalProperties: { anyOf: [{ type: 'string' }, { type: 'string', contentMediaType: 'application/octet-stream' }] },
  },
  CreateSessionRequest: object(
    {
      filename: str("The file's name (never the key), at most 1024 UTF-8 bytes."),
      size: int('Exact size of the file, bytes (empty files go through `POST /uploads`).', 1),
      contentType: str('Default `application/octet-stream`.', { maxLength: 255 }),
      sha256: str('SHA-256 of the whole file: 64 hex digits or base64 of 32 bytes; recorded, not recomputed.'),
      fields: {
        type: 'object',
        additionalProperties: { type: 'string' },
        description: 'Caller metadata, stored as user metadata with the rules of the text fields of `POST /uploads`.',
      },
    },
    ['filename', 'size'],
    'Unknown keys are refused (400 BAD_REQUEST).',
  ),
  PartUrl: object(
    {
      partNumber: int('1-based part number.', 1),
      url: str('Presigned S3 UploadPart URL: PUT the part there with Content-Length; keep the ETag header.', { format: 'uri' }),
    },
    ['partNumber', 'url'],
  ),
  UploadSession: object(
    {
      sessionId: str('Opaque signed session id; use it in the other session routes.', { pattern: SESSION_ID_PATTERN }),
      key: storedFileProperties['key']!,
      bucket: storedFileProperties['bucket']!,
      size: int('Declared size, bytes.', 1),
      partSize: int('Every part but the last has exactly this many bytes.', 1),
      partCount: int('Number of parts.', 1),
      parts: {
        type: 'array',
        items: ref('PartUrl'),
        description: 'URLs of the first parts (at most `UPLOAD_SESSION_BATCH_PARTS`).',
      },
      expiresAt: str('When the session and its URLs expire.', { format: 'date-time' }),
      metadataOmitted: storedFileProperties['metadataOmitted']!,
    },
    ['sessionId', 'key', 'bucket', 'size', 'partSize', 'partCount', 'parts', 'expiresAt'],
  ),
  SignPartsRequest: object(
    { partNumbers: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, maxItems: 10000 } },
    ['partNumbers'],
  ),
  SignPartsResult: object(
    {
      parts: {
        type: 'array',
        items: ref('PartUrl'),
        description: 'The parts asked for, up to the batch size: ask again for the rest.',
      },
      expiresAt: str('When the session and its URLs expire.', { format: 'date-time' }),
    },
    ['parts', 'expiresAt'],
  ),
  CompletedPart: object(
    {
      partNumber: int('1-based part number.', 1),
      etag: str('The ETag header of the part PUT (quotes optional).', { maxLength: 256 }),
    },
    ['partNumber', 'etag'],
  ),
  CompleteSessionRequest: object(
    { parts: { type: 'array', items: ref('CompletedPart') } },
    ['parts'],
    'Every part, 1..partCount.',
  ),
  Health: object({ status: { const: 'ok' } }, ['status']),
  Ready: object({ status: { const: 'ready' } }, ['status']),
  NotReady: object({ status: { const: 'not ready' }, reason: { enum: ['draining', 'storage unreachable'] } }, [
    'status',
    'reason',
  ]),
};

const headers: Record<string, Json> = {
  RequestId: {
    description: "This request's id (Lambda's request id, else a UUID); quote it when reporting a problem.",
    required: true,
    schema: { type: 'string' },
  },
  RetryAfter: {
    description: 'Seconds to wait before retrying.',
    required: true,
    schema: { type: 'integer', minimum: 0, examples: [BUSY_RETRY_AFTER_SECONDS] },
  },
  Replayed: {
    description: "Present on a retry with an `Idempotency-Key` that got the first request's answer.",
    required: false,
    schema: { const: 'true' },
  },
  WwwAuthenticate: { description: 'The scheme expected.', required: true, schema: { const: 'Bearer' } },
  Allow: { description: 'The methods the path answers.', required: true, schema: { type: 'string' } },
};
const headerRef = (name: string): Json => ({ $ref: `#/components/headers/${name}` });

/** Extra headers of the error answers with a given status. */
function errorHeaders(status: number): Record<string, Json> {
  return {
    'x-request-id': headerRef('RequestId'),
    ...(status === 503 || status === 409 ? { 'retry-after': headerRef('RetryAfter') } : {}),
    ...(status === 401 ? { 'www-authenticate': headerRef('WwwAuthenticate') } : {}),
    ...(status === 405 ? { allow: headerRef('Allow') } : {}),
  };
}

/** One error response: the ErrorBody whose code is one of `codes` (all of one status). */
function errorResponse(codes: readonly ErrorCode[], status: number): Json {
  return {
    description: codes.map((c) => `\`${c}\`: ${CODE_MEANING[c]}`).join('; ') + '.',
    headers: errorHeaders(status),
    content: {
      [JSON_MEDIA]: {
        schema: {
          $ref: '#/components/schemas/ErrorBody',
          // 3.1 allows siblings of $ref: this narrows the code to the ones this answer carries.
          type: 'object',
          properties: { error: { type: 'object', properties: { code: { enum: [...codes] } } } },
        },
      },
    },
  };
}

/** The error responses of an operation, one per status, plus the AWS fronts' own refusals. */
function errorResponses(id: OperationId): Record<string, Json> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of OPERATION_CODES[id] as readonly ErrorCode[]) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, Json> = {};
  for (const status of [...byStatus.keys()].sort((a, b) => a - b))
    out[String(status)] = errorResponse(byStatus.get(status)!, status);
  out['403'] = { $ref: '#/components/responses/AwsFrontRefused' };
  return out;
}

const okHeaders = { 'x-request-id': headerRef('RequestId') };
const uploadHeaders = { ...okHeaders, [IDEMPOTENT_REPLAYED_HEADER]: headerRef('Replayed') };
const jsonContent = (schema: string): Json => ({ [JSON_MEDIA]: { schema: ref(schema) } });
const jsonBody = (schema: string, description: string): Json => ({
  required: true,
  description,
  content: jsonContent(schema),
});

const sessionIdParam = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The `sessionId` of `POST /uploads/sessions`.',
  schema: { type: 'string', pattern: SESSION_ID_PATTERN },
};
const correlationParams = [
  {
    name: 'x-correlation-id',
    in: 'header',
    required: false,
    description: "Written in the request's log line as `correlationId` (else `x-request-id`, else the request id).",
    schema: { type: 'string' },
  },
  {
    name: 'x-request-id',
    in: 'header',
    required: false,
    description: "The caller's own id: the log line's `correlationId` when no `x-correlation-id` is sent.",
    schema: { type: 'string' },
  },
];

const idempotencyKeyParam = {
  name: IDEMPOTENCY_KEY_HEADER,
  in: 'header',
  required: false,
  description:
    "Makes retries safe: a retry with the same key from the same caller, after a lost answer, gets the first request's " +
    'answer and stores nothing new; the same key with another request is 422 `IDEMPOTENCY_KEY_REUSED`, a retry while ' +
    'the first still runs 409 `IDEMPOTENCY_IN_PROGRESS`. A bad key is 400 `BAD_REQUEST`.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7e]+$' },
};

/** Where credentials are required: a bearer token (Node server) or SigV4 (the AWS fronts). */
const PROTECTED = [{ bearerToken: [] }, { awsSigv4: [] }];
/** Probes: no credentials on the Node server; the Function URL still wants every request signed. */
const OPEN = [{}, { awsSigv4: [] }];

const SESSION_NOTE =
  ' Answers 404 `NOT_FOUND` on a deployment without a session secret. A refusal (4xx) of complete ends the session ' +
  '(its multipart upload is aborted); a 5xx leaves it to be retried.';

const paths: Record<string, Json> = {
  [UPLOADS_PATH]: {
    post: {
      operationId: 'upload',
      summary: 'Upload files (stream-through lane)',
      description:
        'Every file part is streamed into S3 as it arrives. A request stores every file or none: on any failure every ' +
        'upload in flight is aborted and files it had stored are deleted (listed in `deleted`). With ' +
        '`Accept: application/x-ndjson` the answer is 200 at the first event and then one JSON event per line; a failure ' +
        'after the first line is a final `error` line, one before any line keeps its real status and JSON error body. ' +
        'Through Lambda the body is at most the 6 MB payload (about 4.4 MB of file): use the session routes for more.',
      security: PROTECTED,
      parameters: [idempotencyKeyParam, ...correlationParams],
      requestBody: { required: true, content: { 'multipart/form-data': { schema: ref('UploadForm') } } },
      responses: {
        '200': {
          description:
            'Progress (`Accept: application/x-ndjson`): newline-delimited JSON, each line one `UploadEvent` (the schema ' +
            'describes one line), ending with `done` or `error`.',
          headers: uploadHeaders,
          content: { [NDJSON_CONTENT_TYPE]: { schema: ref('UploadEvent') } },
        },
        '201': { description: 'Every file stored.', headers: uploadHeaders, content: jsonContent('UploadResult') },
        ...errorResponses('upload'),
        '429': { $ref: '#/components/responses/AwsThrottled' },
      },
    },
  },
  [SESSIONS_PATH]: {
    post: {
      operationId: 'createSession',
      summary: 'Start a direct-to-S3 upload session',
      description: 'The service creates the S3 multipart upload and signs URLs for the first parts.' + SESSION_NOTE,
      security: PROTECTED,
      parameters: correlationParams,
      requestBody: jsonBody('CreateSessionRequest', `JSON, at most ${MAX_SESSION_BODY_BYTES} bytes.`),
      responses: {
        '201': { description: 'The session.', headers: okHeaders, content: jsonContent('UploadSession') },
        ...errorResponses('createSession'),
        '429': { $ref: '#/components/responses/AwsThrottled' },
      },
    },
  },
  [`${SESSIONS_PATH}/{id}/parts`]: {
    post: {
      operationId: 'signSessionParts',
      summary: 'Sign more part URLs',
      description: 'At most `UPLOAD_SESSION_BATCH_PARTS` URLs per answer.' + SESSION_NOTE,
      security: PROTECTED,
      parameters: [sessionIdParam, ...correlationParams],
      requestBody: jsonBody('SignPartsRequest', 'Which parts to sign.'),
      responses: {
        '200': { description: 'The URLs.', headers: okHeaders, content: jsonContent('SignPartsResult') },
        ...errorResponses('signSessionParts'),
        '429': { $ref: '#/components/responses/AwsThrottled' },
      },
    },
  },
  [`${SESSIONS_PATH}/{id}/complete`]: {
    post: {
      operationId: 'completeSession',
      summary: 'Verify and complete the upload',
      description:
        'Checks that parts 1..n are all there with the expected sizes and ETags and add up to the declared size, ' +
        'completes, and reads the size back.' +
        SESSION_NOTE,
      security: PROTECTED,
      parameters: [sessionIdParam, ...correlationParams],
      requestBody: jsonBody('CompleteSessionRequest', 'Every part with the ETag its PUT returned.'),
      responses: {
        '200': {
          description: 'It had already been completed (a retry).',
          headers: okHeaders,
          content: jsonContent('UploadResult'),
        },
        '201': { description: 'Completed by this call.', headers: okHeaders, content: jsonContent('UploadResult') },
        ...errorResponses('completeSession'),
        '429': { $ref: '#/components/responses/AwsThrottled' },
      },
    },
  },
  [`${SESSIONS_PATH}/{id}`]: {
    delete: {
      operationId: 'abortSession',
      summary: 'Abort the session',
      description: 'Aborts the multipart upload (an expired session may still be aborted).' + SESSION_NOTE,
      security: PROTECTED,
      parameters: [sessionIdParam, ...correlationParams],
      responses: {
        '204': { description: 'Aborted.', headers: okHeaders },
        ...errorResponses('abortSession'),
        '429': { $ref: '#/components/responses/AwsThrottled' },
      },
    },
  },
  [HEALTH_PATH]: {
    get: {
      operationId: 'getHealth',
      summary: 'Liveness',
      security: OPEN,
      responses: {
        '200': { description: 'The process answers.', headers: okHeaders, content: jsonContent('Health') },
        ...errorResponses('getHealth'),
      },
    },
  },
  [READY_PATH]: {
    get: {
      operationId: 'getReady',
      summary: 'Readiness',
      description:
        'Whether this instance takes uploads now: not while it drains (Node server, SIGTERM), nor while the object ' +
        'store does not answer (one HeadBucket, its result reused for 2 s: never one S3 request per probe).',
      security: OPEN,
      responses: {
        '200': { description: 'Ready.', headers: okHeaders, content: jsonContent('Ready') },
        '503': { description: 'Not ready, and why.', headers: okHeaders, content: jsonContent('NotReady') },
        ...errorResponses('getReady'),
      },
    },
  },
  [METRICS_PATH]: {
    get: {
      operationId: 'getMetrics',
      summary: 'Prometheus metrics',
      description:
        'Node server: the Prometheus text exposition (requests by route and outcome, files and bytes stored, durations, ' +
        'in-flight requests, memory budget, S3 errors by operation, process metrics). 404 `NOT_FOUND` on Lambda, ' +
        'whose metrics are CloudWatch EMF log lines.',
      security: PROTECTED,
      responses: {
        '200': {
          description: 'Prometheus text format 0.0.4.',
          headers: okHeaders,
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        ...errorResponses('getMetrics'),
      },
    },
  },
  [OPENAPI_PATH]: {
    get: {
      operationId: 'getOpenApi',
      summary: 'This document',
      security: OPEN,
      responses: {
        '200': {
          description: 'The OpenAPI 3.1 description of this service.',
          headers: okHeaders,
          content: {
            [JSON_MEDIA]: {
              schema: {
                type: 'object',
                properties: { openapi: { const: '3.1.1' }, paths: { type: 'object' } },
                required: ['openapi', 'paths'],
              },
            },
          },
        },
        ...errorResponses('getOpenApi'),
      },
    },
  },
};

const AWS_FRONT_BODY = {
  type: 'object',
  description: "The AWS front's own body (not this service's ErrorBody): `message` or `Message`.",
  properties: { message: { type: 'string' }, Message: { type: 'string' } },
};

/** The document. Built once; a plain JSON value. */
export const OPENAPI_DOCUMENT = {
  openapi: '3.1.1',
  info: {
    title: 's3-stream-upload',
    version: API_VERSION,
    summary: 'Stream multipart uploads into S3, or upload straight to S3 through signed sessions.',
    description:
      'The same HTTP contract on the Node server and on the Lambda function (Function URL and API Gateway REST). ' +
      'Every answer of the service carries `x-request-id`; every error is `{"error":{"code","message"}}` with a ' +
      'stable `code` (see `ErrorCode`). Each operation lists every status it answers. Two answers are not tied to an ' +
      'operation: a path not listed here answers 404 `NOT_FOUND` (`components.responses.NotFound`), and a listed path ' +
      'with another method 405 `METHOD_NOT_ALLOWED` with `Allow` (`components.responses.MethodNotAllowed`); `HEAD` ' +
      'is answered as `GET` without a body. A Node server started without `UPLOAD_AUTH_TOKENS`/`UPLOAD_AUTH_TOKEN` ' +
      'takes no credentials at all (local development).',
    license: { name: 'MIT', identifier: 'MIT' },
  },
  jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
  servers: [
    { url: 'http://127.0.0.1:3000', description: 'Node server (`npm start`)' },
    {
      url: 'https://{urlId}.lambda-url.{region}.on.aws',
      description: 'Lambda Function URL (AWS_IAM: every request SigV4-signed for service `lambda`)',
      variables: { urlId: { default: 'example' }, region: { default: 'us-east-1' } },
    },
    {
      url: 'https://{apiId}.execute-api.{region}.amazonaws.com/{stage}',
      description: 'API Gateway REST API (aws_iam: SigV4 for service `execute-api`); routes POST /uploads and the session routes',
      variables: { apiId: { default: 'example' }, region: { default: 'us-east-1' }, stage: { default: 'dev' } },
    },
  ],
  security: PROTECTED,
  paths,
  components: {
    schemas,
    headers,
    responses: {
      NotFound: { ...errorResponse(['NOT_FOUND'], 404), description: 'No route for this path.' },
      MethodNotAllowed: errorResponse(['METHOD_NOT_ALLOWED'], 405),
      AwsFrontRefused: {
        description:
          'Function URL or API Gateway: the request is not signed, the signature or payload hash is wrong, or the ' +
          'caller is not granted invoke. Answered by AWS before the function runs.',
        content: { [JSON_MEDIA]: { schema: AWS_FRONT_BODY } },
      },
      AwsThrottled: {
        description: "API Gateway: the caller's usage plan (API key) throttled the request. Retry with backoff.",
        content: { [JSON_MEDIA]: { schema: AWS_FRONT_BODY } },
      },
    },
    securitySchemes: {
      bearerToken: {
        type: 'http',
        scheme: 'bearer',
        description:
          'Node server with `UPLOAD_AUTH_TOKENS` (`name:token,...`) or `UPLOAD_AUTH_TOKEN`; the caller is `token:<name>`.',
      },
      awsSigv4: {
        type: 'apiKey',
        name: 'Authorization',
        in: 'header',
        description:
          'AWS Signature Version 4 (Function URL: service `lambda`; API Gateway: `execute-api`), with a real payload ' +
          'hash in `x-amz-content-sha256`. The caller is the IAM principal ARN. An API key (`x-api-key`) may be required ' +
          'on top for usage plans; it never authenticates alone.',
        'x-amazon-apigateway-authtype': 'awsSigv4',
      },
    },
  },
} as const;
