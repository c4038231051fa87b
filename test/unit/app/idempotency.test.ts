/**
 * Idempotent retries through the app, with an in-memory sink and record store: every order of
 * events (retry after success, during the first, with another body, after a failed first, on a
 * stale or expired record) leaves exactly one stored copy and gives the caller one answer.
 */
import { PassThrough, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createApp, type AppRequest, type RequestRecord } from '../../../src/app/app.ts';
import { createIdempotency, recordId, type IdempotencyOptions } from '../../../src/app/idempotency.ts';
import { createLogger } from '../../../src/logger.ts';
import { MemoryIdempotencyStore } from '../../helpers/memory-idempotency-store.ts';
import { MemorySink } from '../../helpers/memory-sink.ts';
import { buildMultipart, CONTENT_TYPE, type Part } from '../../helpers/multipart.ts';

const LIMITS = { maxFileBytes: 1024, maxFiles: 3, maxFields: 4, maxFieldBytes: 64, maxTotalBytes: 64 * 1024 };
const PARTS: Part[] = [
  { name: 'owner', value: 'svc' },
  { name: 'doc', filename: 'a.txt', data: 'hello', contentType: 'text/plain' },
  { name: 'img', filename: 'b.bin', data: Buffer.alloc(300, 7) },
];
const BODY = buildMultipart(PARTS);
const KEY = 'order-4711-attempt';

function setup(options: { store?: MemoryIdempotencyStore; sink?: MemorySink; idempotency?: Partial<IdempotencyOptions> } = {}) {
  const sink = options.sink ?? new MemorySink();
  const store = options.store ?? new MemoryIdempotencyStore();
  const lines: Array<Record<string, unknown>> = [];
  const records: RequestRecord[] = [];
  const logger = createLogger('info', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  const app = createApp({
    upload: { sink, limits: LIMITS, keyPrefix: 'uploads/' },
    logger,
    metrics: { record: (r) => records.push(r) },
    idempotency: createIdempotency({ store, ttlSeconds: 3600, staleSeconds: 60, logger, ...options.idempotency }),
  });
  /** Starts a request; `body` may be a stream the test ends later. */
  const start = (req: Partial<AppRequest> & { bytes?: Buffer; key?: string | null; accept?: string }) =>
    app.handle({
      method: 'POST',
      path: '/uploads',
      headers: {
        'content-type': CONTENT_TYPE,
        ...(req.key === null ? {} : { 'idempotency-key': req.key ?? KEY }),
        ...(req.accept ? { accept: req.accept } : {}),
      },
      body: Readable.from([req.bytes ?? BODY]),
      signal: new AbortController().signal,
      ...req,
    });
  const send = async (req: Parameters<typeof start>[0] = {}) => {
    const res = await start(req);
    let text = '';
    for await (const chunk of res.body) text += chunk;
    return { ...res, text, json: JSON.parse(text.split('\n')[0]!) as Record<string, unknown> };
  };
  return { app, sink, store, lines, records, send, start };
}

const ndjson = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('idempotent retries', () => {
  it('a retry after success replays the first answer and stores nothing new', async () => {
    const { send, sink, store, lines, records } = setup();
    const first = await send();
    expect(first.status).toBe(201);
    expect(sink.objects.size).toBe(2);
    const retry = await send();
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(first.text);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(sink.puts).toBe(2);
    expect(sink.objects.size).toBe(2);
    expect(store.log).toEqual(['create', 'put:completed']);
    // Keyed requests are hashed: the answer carries every file's SHA-256.
    expect((first.json['files'] as Array<{ sha256: string }>).map((f) => f.sha256)).toEqual([
      '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
      expect.stringMatching(/^[0-9a-f]{64}$/),
    ]);
    expect(lines.map((l) => l['idempotency'])).toEqual(['stored', 'replayed']);
    expect(records.map((r) => [r.outcome, r.filesStored])).toEqual([
      ['done', 2],
      ['done', 0],
    ]);
  });

  it('a client that rebuilds the body (new boundary) still gets the replay', async () => {
    const { send, sink } = setup();
    const first = await send();
    const boundary = 'another-boundary-42';
    const retry = await send({
      bytes: buildMultipart(PARTS, boundary),
      headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'idempotency-key': KEY },
    });
    expect(retry.status).toBe(201);
    expect(retry.text).toBe(first.text);
    expect(sink.puts).toBe(2);
  });

  it('replays as NDJSON when the retry asks for it: file-stored lines, then done', async () => {
    const { send } = setup();
    const first = await send();
    const retry = await send({ accept: 'application/x-ndjson' });
    expect(retry.status).toBe(200);
    const events = ndjson(retry.text);
    const answer = first.json as { files: Array<Record<string, unknown>> };
    expect(events).toEqual([
      { type: 'file-stored', ...answer.files[0] },
      { type: 'file-stored', ...answer.files[1] },
      { type: 'done', ...answer },
    ]);
  });

  it('a first request streamed as NDJSON is replayed as JSON with the same files', async () => {
    const { send } = setup();
    const first = await send({ accept: 'application/x-ndjson' });
    const done = ndjson(first.text).at(-1)!;
    expect(done['type']).toBe('done');
    const retry = await send();
    expect(retry.status).toBe(201);
    expect(retry.json).toEqual({ files: done['files'], fields: done['fields'] });
  });

  it.each([
    ['other file bytes', [PARTS[0]!, { ...PARTS[1]!, data: 'hellO' } as Part, PARTS[2]!]],
    ['another field value', [{ name: 'owner', value: 'svc2' }, PARTS[1]!, PARTS[2]!]],
    ['a field moved after a file', [PARTS[1]!, PARTS[0]!, PARTS[2]!]],
    ['another file name', [PARTS[0]!, { ...PARTS[1]!, filename: 'c.txt' } as Part, PARTS[2]!]],
    ['another content type', [PARTS[0]!, { ...PARTS[1]!, contentType: 'text/csv' } as Part, PARTS[2]!]],
    ['one file fewer', [PARTS[0]!, PARTS[1]!]],
  ])('the same key with %s is refused with 422 IDEMPOTENCY_KEY_REUSED, storing nothing', async (_name, parts) => {
    const { send, sink, lines } = setup();
    await send();
    const res = await send({ bytes: buildMultipart(parts) });
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(sink.puts).toBe(2);
    expect(lines.at(-1)).toMatchObject({ outcome: 'IDEMPOTENCY_KEY_REUSED', status: 422, idempotency: 'reused' });
    // The first answer is still there for a real retry.
    expect((await send()).headers['idempotent-replayed']).toBe('true');
  });

  it('keys belong to their caller: another caller with the same key stores its own files', async () => {
    const { send, sink } = setup();
    await send({ caller: 'arn:aws:iam::111122223333:role/a' });
    const other = await send({ caller: 'arn:aws:iam::111122223333:role/b' });
    expect(other.status).toBe(201);
    expect(other.headers['idempotent-replayed']).toBeUndefined();
    expect(sink.objects.size).toBe(4);
  });

  it('a retry while the first still runs gets 409 IDEMPOTENCY_IN_PROGRESS with Retry-After, then the replay', async () => {
    const { start, send, sink, lines } = setup();
    const body = new PassThrough();
    const running = start({ body });
    body.write(BODY.subarray(0, 100));
    await sleep(20);
    const during = await send();
    expect(during.status).toBe(409);
    expect(during.headers['retry-after']).toBe('2');
    expect(during.unreadBody).toBe('close');
    expect(during.json).toMatchObject({ error: { code: 'IDEMPOTENCY_IN_PROGRESS' } });
    body.end(BODY.subarray(100));
    const first = await running;
    let text = '';
    for await (const chunk of first.body) text += chunk;
    expect(first.status).toBe(201);
    const after = await send();
    expect(after.text).toBe(text);
    expect(sink.objects.size).toBe(2);
    expect(lines.map((l) => l['idempotency'])).toEqual(['in-progress', 'stored', 'replayed']);
  });

  it('two instances sharing only the record store: the second gets 409 while the first runs', async () => {
    const store = new MemoryIdempotencyStore();
    const sink = new MemorySink();
    const a = setup({ store, sink });
    const b = setup({ store, sink });
    const body = new PassThrough();
    const running = a.start({ body });
    body.write(BODY.subarray(0, 10));
    await sleep(20);
    expect((await b.send()).status).toBe(409);
    body.end(BODY.subarray(10));
    for await (const _ of (await running).body);
    expect((await b.send()).headers['idempotent-replayed']).toBe('true');
    expect(sink.objects.size).toBe(2);
  });

  it('a failed first request removes its record and deletes its files: the retry runs afresh, once', async () => {
    const sink = new MemorySink({ failPutAt: [1] });
    const { send, store, lines } = setup({ sink });
    const first = await send();
    expect(first.status).toBe(502);
    expect(sink.objects.size).toBe(0);
    expect(store.records.size).toBe(0);
    const retry = await send();
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    expect(sink.objects.size).toBe(2);
    expect(lines.map((l) => l['idempotency'])).toEqual(['released', 'stored']);
  });

  it('a first request whose client goes away frees its key', async () => {
    const { start, send, store, sink } = setup();
    const controller = new AbortController();
    const body = new PassThrough();
    const running = start({ body, signal: controller.signal });
    body.write(BODY.subarray(0, 200));
    await sleep(20);
    controller.abort(new Error('gone'));
    for await (const _ of (await running).body);
    expect(store.records.size).toBe(0);
    expect((await send()).status).toBe(201);
    expect(sink.objects.size).toBe(2);
  });

  it('when the answer cannot be recorded, the request fails all-or-nothing (502, files deleted, record removed)', async () => {
    const { send, store, sink } = setup();
    store.failComplete = true;
    const res = await send();
    expect(res.status).toBe(502);
    expect(res.json).toMatchObject({ error: { code: 'STORAGE_FAILED', deleted: [expect.any(String), expect.any(String)] } });
    expect(sink.objects.size).toBe(0);
    expect(store.records.size).toBe(0);
    store.failComplete = false;
    expect((await send()).status).toBe(201);
  });

  it('a stale in-progress record (its request died) is taken over; a fresh one is not', async () => {
    const store = new MemoryIdempotencyStore();
    const { send, sink } = setup({ store });
    const id = recordId('anonymous', KEY);
    const at = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();
    store.records.set(id, { record: { state: 'in-progress', startedAt: at(30_000), updatedAt: at(30_000) }, version: 'v0' });
    expect((await send()).status).toBe(409);
    store.records.set(id, { record: { state: 'in-progress', startedAt: at(61_000), updatedAt: at(61_000) }, version: 'v0' });
    const res = await send();
    expect(res.status).toBe(201);
    expect(store.log).toEqual(['replace', 'put:completed']);
    expect(sink.objects.size).toBe(2);
  });

  it('a completed record past the TTL is ignored: the key runs afresh', async () => {
    let clock = Date.now();
    const { send, sink } = setup({ idempotency: { now: () => clock } });
    await send();
    clock += 3601_000;
    const res = await send();
    expect(res.headers['idempotent-replayed']).toBeUndefined();
    expect(sink.objects.size).toBe(4);
  });

  it('the owner refreshes its record while it runs, so a long upload is never taken for dead', async () => {
    const { start, store } = setup({ idempotency: { staleSeconds: 4 } });
    const body = new PassThrough();
    const running = start({ body });
    body.write(BODY.subarray(0, 10));
    await sleep(2300);
    expect(store.log.filter((w) => w === 'put:in-progress').length).toBeGreaterThanOrEqual(1);
    const record = [...store.records.values()][0]!.record;
    expect(Date.parse(record.updatedAt)).toBeGreaterThan(Date.parse(record.startedAt));
    body.end(BODY.subarray(10));
    for await (const _ of (await running).body);
    expect(store.log.at(-1)).toBe('put:completed');
  });

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['non-ASCII', 'clé'],
    ['a control character', 'a\tb'],
  ])('refuses a key that is %s with 400 BAD_REQUEST before reading the body', async (_name, key) => {
    const { send, sink, store } = setup();
    const res = await send({ key });
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'BAD_REQUEST', message: expect.stringContaining('Idempotency-Key') } });
    expect(res.unreadBody).toBe('close');
    expect(sink.puts).toBe(0);
    expect(store.log).toEqual([]);
  });

  it('takes a key of 255 printable characters; requests without a key store every time', async () => {
    const { send, sink } = setup();
    expect((await send({ key: '~'.repeat(255) })).status).toBe(201);
    await send({ key: null });
    await send({ key: null });
    expect(sink.objects.size).toBe(6);
  });
});
