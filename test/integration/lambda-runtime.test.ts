/**
 * What AWS's Node runtime client (aws-lambda-ric, the code of the managed nodejs24.x runtime)
 * does where a hand-written stand-in easily differs (issue 11 item 9, docs/lambda-runtime.md),
 * shown with the probes of test/fixtures/lambda/probes.mjs, and how the shipped function lives
 * with each point. Every case runs the code in its own process against the local Runtime API
 * of scripts/lambda-runtime-api.mjs.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { urlEvent } from '../../scripts/make-events.mjs';
import { closeFunctions, invoke, loadFixtureFunction, loadFunction, type LambdaFunction } from '../helpers/lambda.ts';
import { startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const PRELUDE_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const event = (file: string) => JSON.parse(readFileSync(new URL(`../../events/${file}`, import.meta.url), 'utf8')) as unknown;

let s3: TestS3rver;
let fn: LambdaFunction;

beforeAll(async () => {
  s3 = await startS3rver();
  fn = await loadFunction({
    UPLOAD_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    LOG_LEVEL: 'silent',
  });
});

afterAll(async () => {
  await closeFunctions();
  await s3?.close();
});

describe('the prelude goes out on the first write() only', () => {
  it('end(body) with no write() before it sends the body with no prelude, so no status', async () => {
    const res = await invoke(await loadFixtureFunction('probes.endOnly'), {});
    expect(res.contentType).toBe(PRELUDE_CONTENT_TYPE);
    expect(res.statusCode).toBeUndefined();
    expect(res.raw.toString('utf8')).toBe('{"ok":true}');
  });

  it('write(body), then end(): prelude, 8 NUL bytes, body', async () => {
    const res = await invoke(await loadFixtureFunction('probes.writeThenEnd'), {});
    expect(res.statusCode).toBe(201);
    expect(res.raw.toString('utf8')).toBe(
      JSON.stringify({ statusCode: 201, headers: { 'content-type': 'application/json' } }) + '\0'.repeat(8) + '{"ok":true}',
    );
  });

  it('the shipped function writes its head with write(): every answer has a status', async () => {
    // A 404 (short body), a 413 refused before any S3 call, a 201 streamed through S3.
    for (const [e, status] of [
      [urlEvent({ method: 'GET', path: '/elsewhere' }), 404],
      [event('url-too-large.json'), 413],
      [event('url-two-files.json'), 201],
    ] as const) {
      const res = await invoke(fn, e);
      expect(res.statusCode).toBe(status);
      expect(res.raw.subarray(0, res.raw.indexOf(Buffer.alloc(8))).toString('utf8')).toMatch(/^\{"statusCode":\d{3}/);
    }
  });
});

describe('a rejected handler', () => {
  it('becomes the runtime error trailers after what was written', async () => {
    const res = await invoke(await loadFixtureFunction('probes.rejectAfterWrite'), {});
    expect(res.statusCode).toBe(201);
    expect(res.body).toBe('{"partial":');
    expect(res.trailers).toMatchObject({
      errorType: 'TypeError',
      errorBody: { errorType: 'TypeError', errorMessage: 'failed after the first byte' },
    });
    expect(res.streamEndedBeforeReturn).toBe(false);
    // Not a crash: the same process takes the next event.
    expect(res.exit).toBeUndefined();
  });
});

describe('the response stream', () => {
  it('is a plain object over an http.ClientRequest, not a stream.Writable', async () => {
    const res = await invoke(await loadFixtureFunction('probes.describeStream'), {});
    expect(JSON.parse(res.body)).toEqual({
      instanceofWritable: false,
      pipe: 'undefined',
      writableState: 'undefined',
      methods: ['write', 'end', 'on', 'once', 'destroy'],
    });
  });

  it('takes the shipped function through backpressure (4.3 MiB file, NDJSON progress)', async () => {
    const e = event('url-large-4mb.json') as { headers: Record<string, string> };
    e.headers['accept'] = 'application/x-ndjson';
    const res = await invoke(fn, e);
    expect(res.statusCode).toBe(200);
    expect(res.streamEndedBeforeReturn).toBe(true);
    expect(JSON.parse(res.body.trim().split('\n').at(-1)!)).toMatchObject({ type: 'done' });
  });
});

describe('getRemainingTimeInMillis()', () => {
  it('is not clamped: it goes negative past the deadline', async () => {
    const res = await invoke(
      await loadFixtureFunction('probes.remaining'),
      { sleepMs: 300 },
      { timeoutMs: 50, killAfterMs: 5000 },
    );
    expect((JSON.parse(res.body) as { remainingMs: number }).remainingMs).toBeLessThan(0);
  });

  it('the shipped function answers 504 TIMEOUT when the time is already gone', async () => {
    const res = await invoke(fn, event('url-two-files.json'), { timeoutMs: -1000, killAfterMs: 10_000 });
    expect(res.statusCode).toBe(504);
    expect(JSON.parse(res.body)).toEqual({ error: { code: 'TIMEOUT', message: expect.any(String) } });
    expect(res.streamEndedBeforeReturn).toBe(true);
  });
});

describe('the sandbox is frozen between invocations', () => {
  it.each([
    [true, 'in the next invocation'],
    [false, 'between invocations (what an unfrozen stand-in shows)'],
  ])('freeze %s: a stray timer runs %s', async (freeze) => {
    const probe = await loadFixtureFunction('probes.strayTimer', {}, { freeze });
    // Long enough that the runtime has asked for the next event (and is frozen) before it is
    // due, on a loaded machine too.
    await invoke(probe, { armMs: 500 });
    await new Promise((r) => setTimeout(r, 1500));
    const nextStarted = Date.now();
    const { fired } = JSON.parse((await invoke(probe, {})).body) as { fired: number[] };
    // The second invocation may report before or after the overdue timer ran; ask again.
    const all = fired.length ? fired : (JSON.parse((await invoke(probe, {})).body) as { fired: number[] }).fired;
    expect(all).toHaveLength(1);
    if (freeze) expect(all[0]).toBeGreaterThanOrEqual(nextStarted);
    else expect(all[0]).toBeLessThan(nextStarted);
  });
});

describe('an unhandled rejection', () => {
  it('kills the process mid-invocation; the next invocation is a cold start', async () => {
    const probe = await loadFixtureFunction('probes.unhandledRejection');
    const res = await invoke(probe, {});
    expect(res.exit).toEqual({ code: 1, signal: null });
    expect(res.streamEndedBeforeReturn).toBe(false);
    await vi.waitFor(() =>
      expect(probe.logs().some((l) => l.stream === 'stderr' && l.line.includes('stray rejection'))).toBe(true),
    );
    const next = await invoke(probe, {});
    expect(next).toMatchObject({ coldStart: true, exit: { code: 1 } });
    expect(probe.starts).toBe(2);
  });

  it('does not happen in the shipped function when S3 is unreachable: the process takes the next event', async () => {
    const stalled = await loadFunction({
      UPLOAD_BUCKET: s3.bucket,
      // Nothing listens there: every S3 call fails to connect, again and again.
      S3_ENDPOINT: 'http://127.0.0.1:9',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      LOG_LEVEL: 'silent',
      UPLOAD_DEADLINE_MARGIN_MS: '1000',
    });
    const res = await invoke(stalled, event('url-two-files.json'), { timeoutMs: 3000 });
    expect(res.exit).toBeUndefined();
    expect([502, 503, 504]).toContain(res.statusCode);
    await new Promise((r) => setTimeout(r, 300));
    expect(await invoke(stalled, urlEvent({ method: 'GET', path: '/healthz' }))).toMatchObject({
      statusCode: 200,
      coldStart: false,
    });
  });
});

describe('init', () => {
  it('a bad configuration is posted to /init/error, naming the variable, and the process exits', async () => {
    const bad = await loadFunction({ S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' });
    const res = await invoke(bad, urlEvent({ method: 'GET', path: '/healthz' }));
    expect(res.initError?.errorMessage).toMatch(/UPLOAD_BUCKET/);
    expect(res.exit?.code).not.toBe(0);
    expect(res.statusCode).toBeUndefined();
  });
});
