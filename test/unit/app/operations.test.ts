/**
 * The app's drain, readiness and metrics routes without sockets, against an in-memory sink:
 * refusals while draining, in-flight uploads aborted all-or-nothing by `abortAll()` (JSON and
 * NDJSON), `/readyz` from the drain state and a cached store probe, `/metrics` from the
 * Prometheus port; and what an SDK error puts in a log line.
 */
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createApp, type AppOptions, type AppRequest } from '../../../src/app/app.ts';
import { createLifecycle, drainDeadline } from '../../../src/app/lifecycle.ts';
import { createPrometheusMetrics } from '../../../src/app/prometheus-metrics.ts';
import { createReadiness } from '../../../src/app/readiness.ts';
import { createLogger, serializeError } from '../../../src/logger.ts';
import { buildMultipart, CONTENT_TYPE } from '../../helpers/multipart.ts';
import { MemorySink } from '../../helpers/memory-sink.ts';
import { parsePrometheusText } from '../../helpers/prometheus.ts';

const LIMITS = { maxFileBytes: 1 << 20, maxFiles: 3, maxFields: 4, maxFieldBytes: 64, maxTotalBytes: 4 << 20 };

function setup(options: Partial<AppOptions> = {}) {
  const sink = new MemorySink();
  const lines: Array<Record<string, unknown>> = [];
  const lifecycle = createLifecycle();
  const app = createApp({
    upload: { sink, limits: LIMITS, keyPrefix: 'uploads/' },
    logger: createLogger('info', {}, (line) => lines.push(JSON.parse(line) as Record<string, unknown>)),
    lifecycle,
    ...options,
  });
  const send = async (req: Partial<AppRequest>) => {
    const res = await app.handle({
      method: 'POST',
      path: '/uploads',
      headers: { 'content-type': CONTENT_TYPE },
      body: Readable.from([]),
      signal: new AbortController().signal,
      ...req,
    });
    let text = '';
    for await (const chunk of res.body) text += chunk;
    return { ...res, text };
  };
  return { app, sink, lines, lifecycle, send };
}

/** A body that sends a first file and a part of a second one, then waits until ended by hand. */
function openBody(): PassThrough {
  const whole = buildMultipart([
    { name: 'a', filename: 'a.txt', data: Buffer.from('first file') },
    { name: 'b', filename: 'b.bin', data: Buffer.alloc(64 * 1024, 7) },
  ]);
  const body = new PassThrough();
  body.write(whole.subarray(0, whole.length - 1000));
  return body;
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 2));
  expect(check()).toBe(true);
}

describe('drain', () => {
  it('refuses uploads and session requests with 503 SHUTTING_DOWN, Retry-After and Connection: close; probes answer', async () => {
    const { send, sink, lifecycle, lines } = setup();
    lifecycle.startDraining();
    const body = buildMultipart([{ name: 'a', filename: 'a.txt', data: Buffer.from('x') }]);
    for (const req of [
      { body: Readable.from([body]) },
      { path: '/uploads/sessions', headers: { 'content-type': 'application/json' } },
    ]) {
      const res = await send(req);
      expect(res.status).toBe(503);
      expect(res.headers).toMatchObject({ 'retry-after': '1', connection: 'close' });
      expect(res.unreadBody).toBe('close');
      expect(JSON.parse(res.text)).toMatchObject({ error: { code: 'SHUTTING_DOWN' } });
    }
    expect(sink.puts).toBe(0);
    expect(lines.map((l) => [l['route'], l['outcome'], l['status']])).toEqual([
      ['upload', 'SHUTTING_DOWN', 503],
      ['session', 'SHUTTING_DOWN', 503],
    ]);
    expect((await send({ method: 'GET', path: '/healthz' })).status).toBe(200);
    const ready = await send({ method: 'GET', path: '/readyz' });
    expect({ status: ready.status, body: JSON.parse(ready.text) }).toEqual({
      status: 503,
      body: { status: 'not ready', reason: 'draining' },
    });
  });

  it.each(['json', 'ndjson'] as const)(
    'abortAll() aborts an upload in flight all-or-nothing: its stored file deleted, a 503 (%s)',
    async (mode) => {
      const { app, sink, lifecycle } = setup();
      const body = openBody();
      const pending = app.handle({
        method: 'POST',
        path: '/uploads',
        headers: { 'content-type': CONTENT_TYPE, ...(mode === 'ndjson' ? { accept: 'application/x-ndjson' } : {}) },
        body,
        signal: new AbortController().signal,
      });
      await until(() => sink.objects.size === 1);
      expect(lifecycle.inFlight).toBe(1);
      const idle = lifecycle.idle();
      const res = await (async () => {
        if (mode === 'json') {
          expect(lifecycle.abortAll(drainDeadline(1000))).toBe(1);
          return pending;
        }
        const started = await pending;
        expect(lifecycle.abortAll(drainDeadline(1000))).toBe(1);
        return started;
      })();
      let text = '';
      for await (const chunk of res.body) text += chunk;
      await idle;
      expect(lifecycle.inFlight).toBe(0);
      expect(sink.objects.size).toBe(0);
      expect(sink.deleted).toHaveLength(1);
      const last = JSON.parse(text.trim().split('\n').at(-1)!) as Record<string, unknown>;
      if (mode === 'json') {
        expect(res.status).toBe(503);
        expect(res.headers['retry-after']).toBe('1');
        expect(last).toMatchObject({ error: { code: 'SHUTTING_DOWN', deleted: [expect.any(String)] } });
      } else {
        expect(res.status).toBe(200);
        expect(last).toMatchObject({ type: 'error', code: 'SHUTTING_DOWN' });
      }
    },
  );

  it('without a lifecycle (Lambda) nothing is tracked and nothing is refused', async () => {
    const { send } = setup({ lifecycle: undefined });
    const body = buildMultipart([{ name: 'a', filename: 'a.txt', data: Buffer.from('x') }]);
    expect((await send({ body: Readable.from([body]) })).status).toBe(201);
    expect((await send({ method: 'GET', path: '/readyz' })).status).toBe(200);
  });
});

describe('readiness', () => {
  it('probes the store at most once per cache period, never concurrently, and logs each change', async () => {
    let now = 0;
    let calls = 0;
    let up = true;
    const logged: string[] = [];
    const readiness = createReadiness({
      cacheMs: 2000,
      now: () => now,
      logger: { info: (m) => logged.push(m), warn: (m) => logged.push(m) },
      probe: async () => {
        calls++;
        await new Promise((r) => setTimeout(r, 5));
        if (!up) throw new Error('connect ECONNREFUSED');
      },
    });
    const { send } = setup({ readiness });
    const statuses = await Promise.all([1, 2, 3, 4, 5].map(() => send({ method: 'GET', path: '/readyz' }).then((r) => r.status)));
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    expect(calls).toBe(1);
    up = false;
    now = 1999;
    expect(await readiness.check()).toEqual({ ready: true });
    expect(calls).toBe(1);
    now = 2000;
    expect(await readiness.check()).toEqual({ ready: false, reason: 'storage unreachable' });
    expect((await send({ method: 'GET', path: '/readyz' })).status).toBe(503);
    expect(calls).toBe(2);
    up = true;
    now = 4000;
    expect(await readiness.check()).toEqual({ ready: true });
    expect(logged).toEqual(['object store unreachable: not ready', 'object store reachable again: ready']);
  });

  it('a probe that does not answer counts as unreachable after its timeout', async () => {
    const readiness = createReadiness({
      timeoutMs: 20,
      probe: (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    });
    expect(await readiness.check()).toEqual({ ready: false, reason: 'storage unreachable' });
  });
});

describe('/metrics', () => {
  it('answers 404 when the metrics port keeps no text (Lambda: EMF)', async () => {
    const { send } = setup({ metrics: { record: () => {} } });
    const res = await send({ method: 'GET', path: '/metrics' });
    expect(res.status).toBe(404);
  });

  it('serves Prometheus text whose counters follow the requests, in flight and budget gauges included', async () => {
    const lifecycle = createLifecycle();
    const metrics = createPrometheusMetrics({
      lifecycle,
      processMetrics: false,
      memoryBudget: {
        totalBytes: 1 << 20,
        acquire: () => Promise.reject(new Error('unused')),
        tryAcquire: () => undefined,
        inUse: 4096,
        waiting: 2,
      },
    });
    const { send, app, sink } = setup({ metrics, lifecycle });
    const two = buildMultipart([
      { name: 'a', filename: 'a.txt', data: Buffer.from('hello') },
      { name: 'b', filename: 'b.txt', data: Buffer.from('world!') },
    ]);
    expect((await send({ body: Readable.from([two]) })).status).toBe(201);
    expect((await send({ body: Readable.from([Buffer.from('x')]), headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    const body = openBody();
    const pending = app.handle({
      method: 'POST',
      path: '/uploads',
      headers: { 'content-type': CONTENT_TYPE },
      body,
      signal: new AbortController().signal,
    });
    await until(() => sink.objects.size === 3);
    metrics.recordS3Error('UploadPart', Object.assign(new Error('x'), { name: 'SlowDown' }));

    const res = await send({ method: 'GET', path: '/metrics' });
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const m = parsePrometheusText(res.text);
    const p = 's3_stream_upload_';
    expect(m.value(`${p}requests_total`, { route: 'upload', outcome: 'done' })).toBe(1);
    expect(m.value(`${p}requests_total`, { route: 'upload', outcome: 'UNSUPPORTED_MEDIA_TYPE' })).toBe(1);
    expect(m.value(`${p}files_stored_total`)).toBe(2);
    expect(m.value(`${p}stored_bytes_total`)).toBe(11);
    expect(m.value(`${p}requests_in_flight`)).toBe(1);
    expect(m.value(`${p}memory_budget_in_use_bytes`)).toBe(4096);
    expect(m.value(`${p}memory_budget_waiting_files`)).toBe(2);
    expect(m.value(`${p}s3_errors_total`, { operation: 'UploadPart', error: 'SlowDown' })).toBe(1);
    expect(m.value(`${p}request_duration_seconds_count`, { route: 'upload' })).toBe(2);

    lifecycle.abortAll(drainDeadline(0));
    for await (const _ of (await pending).body);
    const after = parsePrometheusText((await send({ method: 'GET', path: '/metrics' })).text);
    expect(after.value(`${p}requests_total`, { route: 'upload', outcome: 'SHUTTING_DOWN' })).toBe(1);
    expect(after.value(`${p}files_aborted_total`)).toBe(2);
    expect(after.value(`${p}files_stored_total`)).toBe(2);
    expect(after.value(`${p}requests_in_flight`)).toBe(0);
    expect(after.value(`${p}requests_total`, { route: 'metrics', outcome: 'ok' })).toBe(1);
  });
});

describe('serializeError', () => {
  it('names the S3 operation, status, request ids and attempts of an SDK error, and no header or body', () => {
    const sdk = Object.assign(new Error('The specified bucket does not exist'), {
      name: 'NoSuchBucket',
      $fault: 'client',
      $metadata: { httpStatusCode: 404, requestId: 'tx0001', extendedRequestId: 'ext-0001', attempts: 1 },
      $response: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIA/…, Signature=abc' }, body: 'bytes' },
    });
    Object.defineProperty(sdk, 'operation', { value: 'PutObject', enumerable: false });
    const out = serializeError(new Error('outer', { cause: sdk })) as { cause: Record<string, unknown> };
    expect(out.cause).toMatchObject({
      name: 'NoSuchBucket',
      operation: 'PutObject',
      httpStatus: 404,
      s3RequestId: 'tx0001',
      s3ExtendedRequestId: 'ext-0001',
      attempts: 1,
      fault: 'client',
    });
    expect(JSON.stringify(out)).not.toMatch(/Signature|Credential|bytes/);
  });
});
