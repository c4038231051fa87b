/**
 * What an operator sees of the Node server, against radosgw: `GET /metrics` (Prometheus
 * text, behind the bearer token) whose counters match what was uploaded and refused, the
 * S3 errors by operation; `/readyz` for a store that is up, missing or unreachable (probed
 * at most once per cache period); log lines of refused requests and of S3 failures, carrying
 * the request's own id and the S3 operation, error name, status and request id.
 */
import { DeleteObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig, type Env } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { post } from '../helpers/http.ts';
import { buildMultipart, CONTENT_TYPE, generatedBytes } from '../helpers/multipart.ts';
import { parsePrometheusText } from '../helpers/prometheus.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { listKeys, listOpenUploads } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const TOKEN = 'operations-test-token-0123456789';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const CREDENTIALS = { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY };

type Line = Record<string, unknown>;

async function startWith(env: Env): Promise<{ server: RunningServer; lines: Line[]; raw: string[] }> {
  const lines: Line[] = [];
  const raw: string[] = [];
  const server = await startServer(
    loadConfig({ PORT: '0', UPLOAD_SESSION_SECRET: 'operations-session-secret-0123456789', ...env }),
    {
      s3: { credentials: CREDENTIALS },
      logger: createLogger('debug', { service: 's3-stream-upload' }, (line) => {
        raw.push(line);
        lines.push(JSON.parse(line) as Line);
      }),
    },
  );
  return { server, lines, raw };
}

const file = (name: string, size: number, seed: number) => ({
  name: 'file',
  filename: name,
  data: Buffer.concat([...generatedBytes(size, seed)]),
});

describe.skipIf(!endpoint)('metrics, readiness and logs on the Node server (radosgw)', () => {
  let s3: S3Client;
  let bucket: string;
  let main: Awaited<ReturnType<typeof startWith>>;

  beforeAll(async () => {
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('ops'));
    main = await startWith({
      UPLOAD_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      UPLOAD_AUTH_TOKENS: `ops:${TOKEN}`,
      UPLOAD_MAX_FILE_BYTES: '64KiB',
    });
  });

  afterAll(async () => {
    await main?.server.close();
    if (s3) {
      for (const key of await listKeys(s3, bucket)) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      s3.destroy();
    }
  });

  it('counts requests by route and outcome, files and bytes stored, durations; behind the token', async () => {
    const url = main.server.url;
    const two = buildMultipart([file('a.bin', 1000, 1), { name: 'note', value: 'x' }, file('b.bin', 3000, 2)]);
    const one = buildMultipart([file('c.bin', 5, 3)]);
    const tooLarge = buildMultipart([file('big.bin', 70 * 1024, 4)]);
    const headers = { 'content-type': CONTENT_TYPE, ...AUTH };
    expect((await post(`${url}/uploads`, two, { headers })).status).toBe(201);
    expect((await post(`${url}/uploads`, one, { headers })).status).toBe(201);
    expect((await post(`${url}/uploads`, tooLarge, { headers })).status).toBe(413);
    expect((await post(`${url}/uploads`, one, { headers: { 'content-type': CONTENT_TYPE } })).status).toBe(401);

    const refused = await fetch(`${url}/metrics`);
    expect(refused.status).toBe(401);
    const res = await fetch(`${url}/metrics`, { headers: AUTH });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const m = parsePrometheusText(await res.text());

    const p = 's3_stream_upload_';
    expect(m.types.get(`${p}requests_total`)).toBe('counter');
    expect(m.types.get(`${p}request_duration_seconds`)).toBe('histogram');
    expect(m.value(`${p}requests_total`, { route: 'upload', outcome: 'done' })).toBe(2);
    expect(m.value(`${p}requests_total`, { route: 'upload', outcome: 'FILE_TOO_LARGE' })).toBe(1);
    expect(m.value(`${p}requests_total`, { route: 'upload', outcome: 'UNAUTHORIZED' })).toBe(1);
    expect(m.value(`${p}requests_total`, { route: 'metrics', outcome: 'UNAUTHORIZED' })).toBe(1);
    expect(m.value(`${p}files_stored_total`)).toBe(3);
    expect(m.value(`${p}stored_bytes_total`)).toBe(1000 + 3000 + 5);
    expect(m.value(`${p}request_duration_seconds_count`, { route: 'upload' })).toBe(4);
    expect(m.value(`${p}request_duration_seconds_bucket`, { route: 'upload', le: '+Inf' })).toBe(4);
    expect(m.value(`${p}requests_in_flight`)).toBe(0);
    expect(m.value(`${p}draining`)).toBe(0);
    expect(m.value(`${p}memory_budget_in_use_bytes`)).toBe(0);
    expect(m.value(`${p}memory_budget_waiting_files`)).toBe(0);
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(await listKeys(s3, bucket)).toHaveLength(3);

    // Refused requests are logged (401 before the body, 413), each with its own request id;
    // the successful scrape is not.
    const finished = main.lines.filter((l) => l['message'] === 'request finished');
    expect(finished.map((l) => [l['route'], l['status'], l['outcome']])).toEqual([
      ['upload', 201, 'done'],
      ['upload', 201, 'done'],
      ['upload', 413, 'FILE_TOO_LARGE'],
      ['upload', 401, 'UNAUTHORIZED'],
      ['metrics', 401, 'UNAUTHORIZED'],
    ]);
    expect(new Set(finished.map((l) => l['requestId'])).size).toBe(5);
  });

  it('/readyz: 200 with the store up, 503 for a missing bucket, probed once per cache period', async () => {
    expect(await fetch(`${main.server.url}/readyz`).then((r) => r.status)).toBe(200);
    const missing = await startWith({ UPLOAD_BUCKET: uniqueBucketName('missing'), S3_ENDPOINT: endpoint });
    try {
      const res = await fetch(`${missing.server.url}/readyz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ status: 'not ready', reason: 'storage unreachable' });
      expect(await fetch(`${missing.server.url}/healthz`).then((r) => r.status)).toBe(200);
      expect(missing.lines.find((l) => l['message'] === 'object store unreachable: not ready')).toMatchObject({
        level: 'warn',
        err: { code: 'STORAGE_FAILED', cause: { name: 'NotFound', operation: 'HeadBucket', httpStatus: 404 } },
      });
      const started = Date.now();
      for (let i = 0; i < 20; i++) expect((await fetch(`${missing.server.url}/readyz`)).status).toBe(503);
      const periods = Math.ceil((Date.now() - started) / 2000) + 1;
      const m = parsePrometheusText(await fetch(`${missing.server.url}/metrics`).then((r) => r.text()));
      const heads = m.value('s3_stream_upload_s3_errors_total', { operation: 'HeadBucket', error: 'NotFound' }) ?? 0;
      expect(heads).toBeGreaterThanOrEqual(1);
      expect(heads).toBeLessThanOrEqual(periods);
    } finally {
      await missing.server.close();
    }
  });

  it('/readyz turns 503 within a few seconds when S3 does not answer (S3_ENDPOINT=http://127.0.0.1:9)', async () => {
    const down = await startWith({ UPLOAD_BUCKET: 'uploads', S3_ENDPOINT: 'http://127.0.0.1:9' });
    try {
      const started = Date.now();
      const res = await fetch(`${down.server.url}/readyz`);
      expect(res.status).toBe(503);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await fetch(`${down.server.url}/healthz`).then((r) => r.status)).toBe(200);
    } finally {
      await down.server.close();
    }
  });

  it('logs an S3 failure with the S3 operation, error name, status and request id on the request line; no secrets', async () => {
    const missingBucket = uniqueBucketName('nobucket');
    const broken = await startWith({ UPLOAD_BUCKET: missingBucket, S3_ENDPOINT: endpoint });
    try {
      const res = await post(`${broken.server.url}/uploads`, buildMultipart([file('x.bin', 100, 9)]), {
        headers: { 'content-type': CONTENT_TYPE, 'x-request-id': 'caller-chosen' },
      });
      expect(res.status).toBe(502);
      const requestId = res.headers['x-request-id'];
      expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
      const failed = broken.lines.find((l) => l['message'] === 'upload failed');
      expect(failed).toMatchObject({
        level: 'error',
        requestId,
        correlationId: 'caller-chosen',
        code: 'STORAGE_FAILED',
        err: {
          code: 'STORAGE_FAILED',
          cause: { name: 'NoSuchBucket', operation: 'PutObject', httpStatus: 404, s3RequestId: expect.stringMatching(/\S/) },
        },
      });
      expect(broken.lines.find((l) => l['message'] === 'request finished')).toMatchObject({
        requestId,
        status: 502,
        outcome: 'STORAGE_FAILED',
      });
      for (const line of broken.raw) {
        expect(line).not.toContain(RADOSGW_SECRET_KEY);
        expect(line).not.toContain('Signature=');
      }
      const m = parsePrometheusText(await fetch(`${broken.server.url}/metrics`).then((r) => r.text()));
      expect(m.value('s3_stream_upload_s3_errors_total', { operation: 'PutObject', error: 'NoSuchBucket' })).toBe(1);
      expect(await listOpenUploads(s3, bucket)).toEqual([]);
    } finally {
      await broken.server.close();
    }
  });
});
