/**
 * The Lambda function (its shipped bundle) in its own process under AWS's runtime interface
 * client (test/helpers/lambda.ts), against a real s3rver: every events/ case, objects read back
 * and compared by SHA-256; the deadline; the response finished before the runtime took the
 * next event (the Node 24 runtime does not wait for stray promises), and the process survived.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CALLER_ARN, urlEvent, restEvent } from '../../scripts/make-events.mjs';
import { closeFunctions, loadFunction, invoke } from '../helpers/lambda.ts';
import { buildMultipart, CONTENT_TYPE } from '../helpers/multipart.ts';
import { startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

interface ManifestEntry {
  payloadFormat: '1.0' | '2.0';
  status: number;
  code?: string;
  fields?: Record<string, unknown>;
  files?: Array<{ field: string; filename: string; size: number; contentType: string; sha256: string }>;
}

const EVENTS_DIR = new URL('../../events/', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('manifest.json', EVENTS_DIR), 'utf8')) as Record<string, ManifestEntry>;
const loadEvent = (file: string) => JSON.parse(readFileSync(new URL(file, EVENTS_DIR), 'utf8')) as Record<string, unknown>;

let s3: TestS3rver;
let handler: Awaited<ReturnType<typeof loadFunction>>;

const fnEnv = () => ({
  UPLOAD_BUCKET: s3.bucket,
  S3_ENDPOINT: s3.endpoint,
  AWS_ACCESS_KEY_ID: 'S3RVER',
  AWS_SECRET_ACCESS_KEY: 'S3RVER',
  LOG_LEVEL: 'silent',
});

beforeAll(async () => {
  s3 = await startS3rver();
  handler = await loadFunction(fnEnv());
});

afterAll(async () => {
  await closeFunctions();
  await s3?.close();
});

async function listKeys(): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function sha256Of(key: string): Promise<string> {
  const out = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  const hash = createHash('sha256');
  for await (const chunk of out.Body as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

function withAccept(event: Record<string, unknown>, accept: string): Record<string, unknown> {
  const copy = structuredClone(event) as {
    headers: Record<string, string>;
    multiValueHeaders?: Record<string, string[]>;
    version?: string;
  };
  if (copy.version === '2.0') copy.headers['accept'] = accept;
  else {
    copy.headers['Accept'] = accept;
    if (copy.multiValueHeaders) copy.multiValueHeaders['Accept'] = [accept];
  }
  return copy;
}

describe('events/ through the function', () => {
  it.each(Object.entries(manifest))('%s', async (file, expected) => {
    const before = await listKeys();
    const res = await invoke(handler, loadEvent(file), { requestId: file });
    expect(res.contentType).toBe('application/vnd.awslambda.http-integration-response');
    expect(res.responseMode).toBe('streaming');
    expect(res.streamEndedBeforeReturn).toBe(true);
    expect(res.exit).toBeUndefined();
    expect(res.statusCode).toBe(expected.status);
    expect(res.headers['x-request-id']).toBe(file);
    const body = JSON.parse(res.body) as { files?: Array<{ key: string }>; error?: { code: string } };
    if (expected.code) {
      expect(body).toEqual({ error: { code: expected.code, message: expect.any(String) } });
      expect(await listKeys()).toEqual(before);
      return;
    }
    expect(body).toMatchObject({ fields: expected.fields, files: expected.files!.map(({ sha256: _s, ...f }) => f) });
    for (const [i, f] of body.files!.entries()) {
      expect(f.key).toMatch(/^uploads\/[0-9a-f-]{36}/);
      expect(await sha256Of(f.key)).toBe(expected.files![i]!.sha256);
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: f.key }));
      expect(decodeURIComponent(head.Metadata!['original-filename']!)).toBe(expected.files![i]!.filename);
    }
  });

  it('points a too-large body to the direct lane, before any S3 call', async () => {
    const res = await invoke(handler, loadEvent('url-too-large.json'));
    expect(res.statusCode).toBe(413);
    expect(JSON.parse(res.body).error.message).toMatch(/POST \/uploads\/sessions/);
  });

  it('streams NDJSON progress with status 200 at the first byte', async () => {
    const res = await invoke(handler, withAccept(loadEvent('rest-two-files.json'), 'application/x-ndjson'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines.map((l) => l.type)).toEqual(expect.arrayContaining(['file-started', 'file-stored', 'done']));
    expect(lines.at(-1)).toMatchObject({ type: 'done', files: [{ filename: 'report.csv' }, { filename: 'photo.jpg' }] });
  });

  it('ends an NDJSON stream that already started with an error line', async () => {
    const before = await listKeys();
    const res = await invoke(handler, withAccept(loadEvent('url-malformed.json'), 'application/x-ndjson'));
    expect(res.statusCode).toBe(200);
    const lines = res.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(lines[0]).toMatchObject({ type: 'file-started' });
    expect(lines.at(-1)).toMatchObject({ type: 'error', code: 'MALFORMED_MULTIPART' });
    expect(await listKeys()).toEqual(before);
  });

  it('takes a plain (not base64) body, and routes like the Node server', async () => {
    const body = buildMultipart([{ name: 'f', filename: 'plain.txt', data: 'plain text body', contentType: 'text/plain' }]);
    const event = {
      ...urlEvent({ headers: { 'content-type': CONTENT_TYPE } }),
      body: body.toString('utf8'),
      isBase64Encoded: false,
    };
    const res = await invoke(handler, event);
    expect(res.statusCode).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ files: [{ filename: 'plain.txt', size: 15 }] });

    expect((await invoke(handler, restEvent({ method: 'GET', path: '/healthz' }))).statusCode).toBe(200);
    expect((await invoke(handler, restEvent({ method: 'GET', path: '/uploads' }))).statusCode).toBe(405);
    expect((await invoke(handler, urlEvent({ method: 'GET', path: '/elsewhere' }))).statusCode).toBe(404);
  });
});

describe('observability', () => {
  it('logs one JSON line with request and correlation ids, and EMF metrics, never the body', async () => {
    const logged = await loadFunction({ ...fnEnv(), LOG_LEVEL: 'info' });
    const event = loadEvent('rest-two-files.json');
    expect((await invoke(logged, event, { requestId: 'req-42' })).statusCode).toBe(201);
    // The function's stdout, as Lambda hands it to CloudWatch (the pipe may lag the response).
    const stdout = () =>
      logged
        .logs()
        .filter((l) => l.stream === 'stdout')
        .map((l) => l.line);
    await vi.waitFor(() => expect(stdout().some((l) => l.includes('UploadedBytes'))).toBe(true));
    const lines = stdout();
    const records = lines.flatMap((l) => l.trim().split('\n')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.find((r) => r['message'] === 'request finished')).toMatchObject({
      level: 'info',
      requestId: 'req-42',
      correlationId: 'corr-two-files',
      route: 'upload',
      caller: CALLER_ARN,
      outcome: 'done',
      status: 201,
      files: [
        { key: expect.stringMatching(/^uploads\/.+\/report\.csv$/), size: 20_000 },
        { key: expect.stringMatching(/^uploads\/.+\/photo\.jpg$/), size: 300_000 },
      ],
      payloadFormat: '1.0',
    });
    const emf = records.find((r) => '_aws' in r) as {
      _aws: { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> };
    } & Record<string, unknown>;
    expect(emf._aws.CloudWatchMetrics[0]!.Metrics.map((m) => m.Name)).toEqual(
      expect.arrayContaining(['UploadedBytes', 'UploadedFiles', 'UploadDuration']),
    );
    expect(emf['UploadedBytes']).toBe(320_000);
    const text = lines.join('');
    expect(text).not.toContain((event['body'] as string).slice(1000, 1100));
    expect(text).not.toContain('redacted-api-key');
  });
});

describe('deadline', () => {
  let stall: Server;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    // An "S3" that accepts connections and never answers.
    stall = createServer((socket) => {
      sockets.add(socket);
      socket.resume();
    });
    await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => stall.close(r));
  });

  it.each(['json', 'ndjson'])('aborts stalled uploads and answers TIMEOUT before the function times out (%s)', async (mode) => {
    const port = (stall.address() as AddressInfo).port;
    const stalled = await loadFunction({
      ...fnEnv(),
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      UPLOAD_DEADLINE_MARGIN_MS: '3000',
    });
    const event = loadEvent('url-two-files.json');
    // The Runtime API kills the sandbox at the deadline, as Lambda does: an answer that came
    // before it is what the margin is for.
    const res = await invoke(stalled, mode === 'ndjson' ? withAccept(event, 'application/x-ndjson') : event, { timeoutMs: 6000 });
    expect(res.timedOut).toBe(false);
    expect(res.streamEndedBeforeReturn).toBe(true);
    if (mode === 'json') {
      expect(res.statusCode).toBe(504);
      expect(JSON.parse(res.body)).toEqual({ error: { code: 'TIMEOUT', message: expect.any(String) } });
    } else {
      expect(res.statusCode).toBe(200);
      expect(JSON.parse(res.body.trim().split('\n').at(-1)!)).toMatchObject({ type: 'error', code: 'TIMEOUT' });
    }
    // The aborted uploads left nothing behind that kills the process: the same sandbox answers.
    const next = await invoke(stalled, restEvent({ method: 'GET', path: '/healthz' }));
    expect(next).toMatchObject({ statusCode: 200, coldStart: false });
  });
});
