/**
 * The app without sockets: routing, authentication, caller identity, the request's log line
 * and its metrics record, against an in-memory sink. The same app runs behind both adapters
 * (test/integration/contract.test.ts runs it over HTTP and through the Lambda bundle too).
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { callerPrefix, createAuthenticator } from '../../../src/app/auth.ts';
import { createApp, type AppOptions, type AppRequest, type RequestRecord } from '../../../src/app/app.ts';
import { createLogger } from '../../../src/logger.ts';
import { buildMultipart, CONTENT_TYPE } from '../../helpers/multipart.ts';
import { MemorySink } from '../../helpers/memory-sink.ts';

const LIMITS = { maxFileBytes: 1024, maxFiles: 3, maxFields: 4, maxFieldBytes: 64, maxTotalBytes: 64 * 1024 };
const TOKEN = 'billing-token-0123456789';

function setup(options: Partial<AppOptions> = {}) {
  const sink = new MemorySink();
  const lines: Array<Record<string, unknown>> = [];
  const records: RequestRecord[] = [];
  const app = createApp({
    upload: { sink, limits: LIMITS, keyPrefix: 'uploads/' },
    logger: createLogger('info', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    metrics: { record: (r) => records.push(r) },
    ...options,
  });
  const send = async (req: Partial<AppRequest> & { bytes?: Buffer }) => {
    const res = await app.handle({
      method: 'POST',
      path: '/uploads',
      headers: { 'content-type': CONTENT_TYPE },
      body: Readable.from(req.bytes ? [req.bytes] : []),
      signal: new AbortController().signal,
      ...req,
    });
    let text = '';
    for await (const chunk of res.body) text += chunk;
    return { ...res, text, json: text ? (JSON.parse(text.split('\n')[0]!) as Record<string, unknown>) : undefined };
  };
  return { app, sink, lines, records, send };
}

const upload = buildMultipart([
  { name: 'owner', value: 'svc' },
  { name: 'doc', filename: 'a.txt', data: Buffer.from('hello') },
]);

describe('app routes', () => {
  it('stores a file, answers 201 with its own request id, and logs one line naming caller, keys and sizes', async () => {
    const { send, sink, lines, records } = setup();
    const res = await send({
      bytes: upload,
      requestId: 'req-1',
      headers: { 'content-type': CONTENT_TYPE, 'x-request-id': 'theirs' },
    });
    expect(res.status).toBe(201);
    expect(res.headers['x-request-id']).toBe('req-1');
    const [key] = [...sink.objects.keys()];
    expect(key).toMatch(/^uploads\/[0-9a-f-]{36}\/a\.txt$/);
    expect(sink.objects.get(key!)!.metadata).toMatchObject({ 'uploaded-by': 'anonymous', owner: 'svc' });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        message: 'request finished',
        requestId: 'req-1',
        // A caller's X-Request-Id is its correlation id; the request id stays the server's own.
        correlationId: 'theirs',
        route: 'upload',
        caller: 'anonymous',
        outcome: 'done',
        status: 201,
        files: [{ key, size: 5 }],
      }),
    ]);
    expect(records).toEqual([
      expect.objectContaining({ route: 'upload', outcome: 'done', status: 201, filesStored: 1, bytesStored: 5, filesAborted: 0 }),
    ]);
  });

  it.each([
    ['GET', '/healthz', 200, undefined],
    ['HEAD', '/healthz', 200, undefined],
    ['GET', '/uploads', 405, 'POST'],
    ['PUT', '/uploads/sessions/abc', 405, 'DELETE'],
    ['GET', '/nowhere', 404, undefined],
  ])('%s %s -> %i', async (method, path, status, allow) => {
    const { send } = setup();
    const res = await send({ method, path });
    expect(res.status).toBe(status);
    expect(res.headers['allow']).toBe(allow);
  });

  it('answers the session routes with 404 NOT_FOUND when sessions are not configured', async () => {
    const { send } = setup();
    const res = await send({
      path: '/uploads/sessions',
      headers: { 'content-type': 'application/json' },
      bytes: Buffer.from('{}'),
    });
    expect(res.status).toBe(404);
    expect(res.json).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it('refuses a body over the platform ceiling before reading it, pointing to the direct lane', async () => {
    const { send, sink } = setup();
    const res = await send({ bytes: upload, bodyBytes: upload.length, maxBodyBytes: upload.length - 1 });
    expect(res.status).toBe(413);
    expect(res.unreadBody).toBe('close');
    expect(String((res.json!['error'] as { message: string }).message)).toContain('/uploads/sessions');
    expect(sink.puts).toBe(0);
  });
});

describe('authentication and caller identity', () => {
  const tokens = { authTokens: { billing: TOKEN, reports: 'reports-token-0123456789' } };

  it('refuses a missing or wrong token with 401 before reading the body, and logs the refusal', async () => {
    const { send, sink, lines } = setup(tokens);
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${TOKEN}`]) {
      const res = await send({
        bytes: upload,
        headers: { 'content-type': CONTENT_TYPE, ...(authorization ? { authorization } : {}) },
      });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.unreadBody).toBe('close');
    }
    expect(sink.puts).toBe(0);
    expect(lines.map((l) => [l['outcome'], l['status']])).toEqual([
      ['UNAUTHORIZED', 401],
      ['UNAUTHORIZED', 401],
      ['UNAUTHORIZED', 401],
    ]);
  });

  it('names the caller by its token, in metadata, log and metrics', async () => {
    const { send, sink, lines, records } = setup(tokens);
    const res = await send({ bytes: upload, headers: { 'content-type': CONTENT_TYPE, authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(201);
    expect([...sink.objects.values()][0]!.metadata['uploaded-by']).toBe('token%3Abilling');
    expect(lines[0]).toMatchObject({ caller: 'token:billing' });
    expect(records[0]).toMatchObject({ caller: 'token:billing' });
  });

  it('keeps the probes open', async () => {
    const { send } = setup(tokens);
    expect((await send({ method: 'GET', path: '/healthz' })).status).toBe(200);
  });

  it('trusts a caller the platform verified (IAM) and records its ARN; a field cannot replace it', async () => {
    const arn = 'arn:aws:sts::111122223333:assumed-role/billing/job-7';
    const { send, sink } = setup(tokens);
    const spoof = buildMultipart([
      { name: 'uploaded-by', value: 'someone-else' },
      { name: 'doc', filename: 'a.txt', data: Buffer.from('x') },
    ]);
    const res = await send({ bytes: spoof, caller: arn });
    expect(res.status).toBe(201);
    const stored = [...sink.objects.values()][0]!;
    expect(decodeURIComponent(stored.metadata['uploaded-by']!)).toBe(arn);
    expect(res.json).toMatchObject({ files: [{ metadataOmitted: ['uploaded-by'] }] });
  });

  it('puts objects under the caller prefix when configured', async () => {
    const { send, sink } = setup({ ...tokens, prefixByCaller: true });
    await send({ bytes: upload, headers: { 'content-type': CONTENT_TYPE, authorization: `Bearer ${TOKEN}` } });
    await send({ bytes: upload, caller: 'arn:aws:sts::111122223333:assumed-role/reports/s-1' });
    expect([...sink.objects.keys()].map((k) => k.split('/').slice(0, 2).join('/'))).toEqual([
      'uploads/billing',
      'uploads/111122223333-reports',
    ]);
  });

  it.each([
    ['arn:aws:sts::111122223333:assumed-role/billing/session-1', '111122223333-billing/'],
    ['arn:aws:iam::111122223333:user/ops/alice', '111122223333-alice/'],
    ['arn:aws:iam::111122223333:role/path/reports', '111122223333-reports/'],
    ['token:billing', 'billing/'],
    ['api-key:k1a2b3', 'api-key-k1a2b3/'],
    ['..', '-/'],
  ])('callerPrefix(%s) = %s', (caller, prefix) => {
    expect(callerPrefix(caller)).toBe(prefix);
  });

  it('compares tokens without regard to which one matched', () => {
    const auth = createAuthenticator({ a: 'a'.repeat(16), b: 'b'.repeat(16) });
    expect(auth(undefined, `Bearer ${'b'.repeat(16)}`)).toEqual({ caller: 'token:b' });
    expect(auth(undefined, 'Bearer ' + 'c'.repeat(16))).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
    expect(createAuthenticator({})(undefined, undefined)).toEqual({ caller: 'anonymous' });
  });
});
