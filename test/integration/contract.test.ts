/**
 * One contract, every adapter: the same requests through the app itself (no sockets), the
 * Node server and the Lambda function (REST payload 1.0 and
 * Function URL payload 2.0), all writing into one real s3rver, must give the same statuses,
 * bodies, stored bytes, authentication answers and caller records.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLER_ARN, restEvent, urlEvent } from '../../scripts/make-events.mjs';
import { loadConfig } from '../../src/config.ts';
import { createServiceApp } from '../../src/wiring.ts';
import type { App } from '../../src/app/app.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { closeFunctions, invoke, loadFunction } from '../helpers/lambda.ts';
import { expectConforming } from '../helpers/openapi-conformance.ts';
import { BOUNDARY, buildMultipart, CONTENT_TYPE, generatedBytes, sha256, type Part } from '../helpers/multipart.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';
import type { SignPartsResult, UploadResult, UploadSession } from '../../src/protocol.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Request {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}
interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}
interface Transport {
  send(req: Request): Promise<Response>;
}

let s3: TestS3rver;
let server: RunningServer;
let tokenServer: RunningServer;
const transports: Record<string, Transport> = {};
/** The same transports with bearer tokens configured (Lambda events then carry no IAM principal). */
const tokenTransports: Record<string, Transport> = {};
/** Lambda events signed by CALLER_ARN, tokens configured: the verified principal is the caller. */
const iamTransports: Record<string, Transport> = {};
const TOKENS = { UPLOAD_AUTH_TOKENS: 'billing:billing-token-0123456789' };
const SESSION_SECRET = 'contract-session-secret-0123456789abcdef';

/** The app called directly: what both adapters translate to and from. */
function appTransport(app: App): Transport {
  return {
    async send({ method = 'POST', path = '/uploads', headers = {}, body }) {
      const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
      const res = await app.handle({
        method,
        path,
        headers: lower,
        body: Readable.from(body ? [body] : []),
        signal: new AbortController().signal,
      });
      let text = '';
      for await (const chunk of res.body) text += chunk;
      return { status: res.status, headers: res.headers, body: text };
    },
  };
}

const LIMITS = {
  UPLOAD_MAX_FILE_BYTES: String(1 * MiB),
  UPLOAD_MAX_FILES: '2',
  UPLOAD_MAX_FIELDS: '3',
  UPLOAD_MAX_FIELD_BYTES: '100',
  UPLOAD_MAX_TOTAL_BYTES: String(1.5 * MiB),
  S3_PART_BYTES: String(5 * MiB),
};

beforeAll(async () => {
  s3 = await startS3rver();
  const env = { UPLOAD_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, UPLOAD_SESSION_SECRET: SESSION_SECRET, ...LIMITS };
  server = await startServer(loadConfig({ ...env, PORT: '0' }), {
    s3: { credentials: S3RVER_CREDENTIALS },
    logger: createLogger('silent'),
  });
  const nodeTransport = (running: RunningServer): Transport => ({
    async send({ method = 'POST', path = '/uploads', headers = {}, body }) {
      const res = await fetch(running.url + path, { method, headers, ...(body ? { body } : {}) });
      return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() };
    },
  });
  transports['node'] = nodeTransport(server);
  const appConfig = (extra: Record<string, string> = {}) => loadConfig({ ...env, ...extra });
  const appOptions = { logger: createLogger('silent'), s3: { credentials: S3RVER_CREDENTIALS }, sessionSecret: SESSION_SECRET };
  transports['app (no sockets)'] = appTransport(createServiceApp(appConfig(), appOptions).app);
  tokenTransports['app (no sockets)'] = appTransport(createServiceApp(appConfig(TOKENS), appOptions).app);
  tokenServer = await startServer(loadConfig({ ...env, ...TOKENS, PORT: '0' }), {
    s3: { credentials: S3RVER_CREDENTIALS },
    logger: createLogger('silent'),
  });
  tokenTransports['node'] = nodeTransport(tokenServer);
  const fnEnv = { ...env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', LOG_LEVEL: 'silent' };
  const handler = await loadFunction(fnEnv);
  const tokenHandler = await loadFunction({ ...fnEnv, ...TOKENS });
  const lambdaTransport = (fn: typeof handler, make: typeof restEvent | typeof urlEvent, caller: string | null): Transport => ({
    async send(req) {
      const res = await invoke(fn, make({ ...req, caller, ...(req.body ? { body: req.body } : {}) }));
      expect(res.streamEndedBeforeReturn).toBe(true);
      return { status: res.statusCode!, headers: res.headers, body: res.body };
    },
  });
  for (const [name, make] of [
    ['lambda REST (1.0)', restEvent],
    ['lambda Function URL (2.0)', urlEvent],
  ] as const) {
    transports[name] = lambdaTransport(handler, make, CALLER_ARN);
    tokenTransports[name] = lambdaTransport(tokenHandler, make, null);
    iamTransports[name] = lambdaTransport(tokenHandler, make, CALLER_ARN);
  }
  // Every answer of every transport is held to the OpenAPI document (openapi.json).
  for (const set of [transports, tokenTransports, iamTransports]) {
    for (const [name, transport] of Object.entries(set)) set[name] = conforming(transport);
  }
});

function conforming(transport: Transport): Transport {
  return {
    async send(req) {
      const res = await transport.send(req);
      expectConforming({ method: req.method ?? 'POST', path: req.path ?? '/uploads' }, res);
      return res;
    },
  };
}

afterAll(async () => {
  await closeFunctions();
  await server?.close();
  await tokenServer?.close();
  await s3?.close();
});

async function listKeys(): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function readSha(key: string): Promise<string> {
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of out.Body as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

const multipart = (parts: Part[], accept?: string): Request => ({
  headers: { 'content-type': CONTENT_TYPE, ...(accept ? { accept } : {}) },
  body: buildMultipart(parts),
});
const file = (name: string, size: number, seed = size): Part => ({
  name,
  filename: `${name}.bin`,
  data: Buffer.concat([...generatedBytes(size, seed)]),
});

const ERROR_CASES: Array<[string, Request, number, string]> = [
  ['not multipart', { headers: { 'content-type': 'application/json' }, body: Buffer.from('{}') }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['no boundary', { headers: { 'content-type': 'multipart/form-data' }, body: Buffer.from('x') }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
  [
    'malformed',
    {
      headers: { 'content-type': CONTENT_TYPE },
      body: Buffer.from(`--${BOUNDARY}\r\nbroken header\r\n\r\nx\r\n--${BOUNDARY}--\r\n`),
    },
    400,
    'MALFORMED_MULTIPART',
  ],
  ['no files', multipart([{ name: 'a', value: '1' }]), 400, 'NO_FILES'],
  ['file too large', multipart([file('big', MiB + 1)]), 413, 'FILE_TOO_LARGE'],
  ['too many files', multipart([file('a', 1), file('b', 2), file('c', 3)]), 413, 'TOO_MANY_FILES'],
  ['too many fields', multipart([1, 2, 3, 4].map((i) => ({ name: `k${i}`, value: 'v' }))), 413, 'TOO_MANY_FIELDS'],
  ['field too large', multipart([{ name: 'k', value: 'x'.repeat(101) }, file('a', 1)]), 413, 'FIELD_TOO_LARGE'],
  ['body too large', multipart([file('a', 0.9 * MiB), file('b', 0.9 * MiB)]), 413, 'PAYLOAD_TOO_LARGE'],
  ['unknown route', { method: 'GET', path: '/nope' }, 404, 'NOT_FOUND'],
  ['wrong method', { method: 'GET', path: '/uploads' }, 405, 'METHOD_NOT_ALLOWED'],
];

describe.each(['app (no sockets)', 'node', 'lambda REST (1.0)', 'lambda Function URL (2.0)'])('contract: %s', (name) => {
  const send = (req: Request) => transports[name]!.send(req);

  it('stores every file byte-exact and answers 201 with files and fields', async () => {
    const a = file('doc', 700 * KiB, 1);
    const b = file('img', 3, 2);
    const res = await send(multipart([{ name: 'owner', value: 'svc' }, a, b, { name: 'after', value: 'z' }]));
    expect(res.status).toBe(201);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    const json = JSON.parse(res.body) as { files: Array<{ key: string }> };
    expect(json).toMatchObject({
      fields: { owner: 'svc', after: 'z' },
      files: [
        { field: 'doc', filename: 'doc.bin', size: 700 * KiB, contentType: 'application/octet-stream', bucket: s3.bucket },
        { field: 'img', filename: 'img.bin', size: 3 },
      ],
    });
    expect(await readSha(json.files[0]!.key)).toBe(sha256((a as { data: Buffer }).data));
    expect(await readSha(json.files[1]!.key)).toBe(sha256((b as { data: Buffer }).data));
  });

  it('streams NDJSON events ending with done', async () => {
    const res = await send(multipart([file('f', 2 * KiB)], 'application/x-ndjson'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const types = res.body
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { type: string }).type);
    expect(types).toEqual(['file-started', 'file-stored', 'done']);
  });

  it('ends a started NDJSON stream with an error line and stores nothing', async () => {
    const before = await listKeys();
    const res = await send(multipart([file('f', MiB + 10)], 'application/x-ndjson'));
    expect(res.status).toBe(200);
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines[0]).toMatchObject({ type: 'file-started' });
    expect(lines.at(-1)).toEqual({ type: 'error', code: 'FILE_TOO_LARGE', message: expect.any(String) });
    expect(await listKeys()).toEqual(before);
  });

  it.each(ERROR_CASES)('%s -> %i %s, nothing stored', async (_label, req, status, code) => {
    const before = await listKeys();
    const res = await send(req);
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    // `deleted` may list files the request had stored before it failed; none may be left.
    const { error } = JSON.parse(res.body) as { error: Record<string, unknown> };
    expect(error).toMatchObject({ code, message: expect.any(String) });
    expect(Object.keys(error).filter((k) => !['code', 'message', 'deleted'].includes(k))).toEqual([]);
    expect(await listKeys()).toEqual(before);
  });

  it('replays a retry with the same Idempotency-Key and refuses the key for another request (422)', async () => {
    const key = `contract-${name}-${Date.now()}`;
    const req = multipart([file('f', 10, 3)]);
    const keyed = { ...req, headers: { ...req.headers, 'idempotency-key': key } };
    const first = await send(keyed);
    expect(first.status).toBe(201);
    const before = await listKeys();
    const retry = await send(keyed);
    expect({ status: retry.status, body: retry.body, replayed: retry.headers['idempotent-replayed'] }).toEqual({
      status: 201,
      body: first.body,
      replayed: 'true',
    });
    const other = multipart([file('g', 11, 4)]);
    const reused = await send({ ...other, headers: { ...other.headers, 'idempotency-key': key } });
    expect(reused.status).toBe(422);
    expect(JSON.parse(reused.body)).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(await listKeys()).toEqual(before);
  });

  it('answers the health check', async () => {
    const res = await send({ method: 'GET', path: '/healthz' });
    expect({ status: res.status, body: JSON.parse(res.body) }).toEqual({ status: 200, body: { status: 'ok' } });
  });

  it('serves its OpenAPI document', async () => {
    const res = await send({ method: 'GET', path: '/openapi.json' });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ openapi: '3.1.1', paths: { '/uploads': {} } });
  });
});

async function uploadedBy(key: string): Promise<string | undefined> {
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
  const value = head.Metadata?.['uploaded-by'];
  return value === undefined ? undefined : decodeURIComponent(value);
}

describe.each(['app (no sockets)', 'node', 'lambda REST (1.0)', 'lambda Function URL (2.0)'])(
  'contract, bearer tokens: %s',
  (name) => {
    const send = (req: Request) => tokenTransports[name]!.send(req);

    it.each([
      ['no Authorization', {}],
      ['a wrong token', { authorization: 'Bearer wrong-token-0123456789' }],
    ])('%s -> 401 UNAUTHORIZED with WWW-Authenticate, nothing stored', async (_label, auth) => {
      const before = await listKeys();
      const req = multipart([file('f', 10)]);
      const res = await send({ ...req, headers: { ...req.headers, ...auth } });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      expect(await listKeys()).toEqual(before);
    });

    it('the probe needs no token', async () => {
      expect((await send({ method: 'GET', path: '/healthz' })).status).toBe(200);
    });

    it('the right token stores the file as uploaded by token:<name>', async () => {
      const req = multipart([file('f', 10)]);
      const res = await send({ ...req, headers: { ...req.headers, authorization: 'Bearer billing-token-0123456789' } });
      expect(res.status).toBe(201);
      const { files } = JSON.parse(res.body) as { files: Array<{ key: string }> };
      expect(await uploadedBy(files[0]!.key)).toBe('token:billing');
    });
  },
);

describe.each(['lambda REST (1.0)', 'lambda Function URL (2.0)'])('contract, IAM principal: %s', (name) => {
  it('a request the front verified needs no token, and the object records the principal ARN', async () => {
    const res = await iamTransports[name]!.send(multipart([file('f', 10)]));
    expect(res.status).toBe(201);
    const { files } = JSON.parse(res.body) as { files: Array<{ key: string }> };
    expect(await uploadedBy(files[0]!.key)).toBe(CALLER_ARN);
  });
});

describe.each(['app (no sockets)', 'node', 'lambda REST (1.0)', 'lambda Function URL (2.0)'])(
  'contract, sessions: %s',
  (name) => {
    const send = (req: Request) => transports[name]!.send(req);
    const json = (method: string, path: string, body: unknown): Request => ({
      method,
      path,
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)),
    });

    it('create, sign, PUT straight to S3, complete: the object is byte-exact', async () => {
      const data = Buffer.concat([...generatedBytes(3 * KiB, 7)]);
      const created = await send(
        json('POST', '/uploads/sessions', { filename: 'direct.bin', size: data.length, fields: { owner: 'svc' } }),
      );
      expect(created.status).toBe(201);
      const session = JSON.parse(created.body) as UploadSession;
      expect(session).toMatchObject({ size: data.length, partCount: 1, bucket: s3.bucket });
      const signed = await send(json('POST', `/uploads/sessions/${session.sessionId}/parts`, { partNumbers: [1] }));
      expect(signed.status).toBe(200);
      const { parts } = JSON.parse(signed.body) as SignPartsResult;
      const put = await fetch(parts[0]!.url, { method: 'PUT', body: data });
      expect(put.status).toBe(200);
      const complete = json('POST', `/uploads/sessions/${session.sessionId}/complete`, {
        parts: [{ partNumber: 1, etag: put.headers.get('etag')! }],
      });
      const done = await send(complete);
      expect(done.status).toBe(201);
      const { files } = JSON.parse(done.body) as UploadResult;
      expect(files[0]).toMatchObject({ key: session.key, size: data.length, filename: 'direct.bin' });
      expect(await readSha(session.key)).toBe(sha256(data));
    });

    it.each<[string, number, string, () => Request]>([
      ['a body that is not JSON', 400, 'BAD_REQUEST', () => json('POST', '/uploads/sessions', '{')],
      ['an empty file', 400, 'BAD_REQUEST', () => json('POST', '/uploads/sessions', { filename: 'e', size: 0 })],
      ['an unknown key', 400, 'BAD_REQUEST', () => json('POST', '/uploads/sessions', { filename: 'e', size: 1, colour: 'red' })],
      [
        'too many fields',
        413,
        'TOO_MANY_FIELDS',
        () => json('POST', '/uploads/sessions', { filename: 'e', size: 1, fields: { a: '1', b: '2', c: '3', d: '4' } }),
      ],
      ['a file over the limit', 413, 'FILE_TOO_LARGE', () => json('POST', '/uploads/sessions', { filename: 'b', size: 2 * MiB })],
      ['a forged id', 404, 'INVALID_SESSION', () => json('POST', '/uploads/sessions/forged.id/parts', { partNumbers: [1] })],
      [
        'complete with a forged id',
        404,
        'INVALID_SESSION',
        () => json('POST', '/uploads/sessions/forged.id/complete', { parts: [] }),
      ],
      ['abort with a forged id', 404, 'INVALID_SESSION', () => ({ method: 'DELETE', path: '/uploads/sessions/forged.id' })],
      ['the wrong method', 405, 'METHOD_NOT_ALLOWED', () => ({ method: 'GET', path: '/uploads/sessions' })],
    ])('%s -> %i %s', async (_label, status, code, req) => {
      const res = await send(req());
      expect(res.status).toBe(status);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code } });
    });

    it('abort: s3rver does not implement AbortMultipartUpload, so the answer is 502 STORAGE_FAILED', async () => {
      const created = await send(json('POST', '/uploads/sessions', { filename: 'gone.bin', size: 10 }));
      const { sessionId } = JSON.parse(created.body) as UploadSession;
      const res = await send({ method: 'DELETE', path: `/uploads/sessions/${sessionId}` });
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'STORAGE_FAILED' } });
    });
  },
);
