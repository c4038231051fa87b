/**
 * The Node server against a real s3rver over HTTP: bodies streamed by a real client, objects
 * read back and compared by SHA-256, every error code, and nothing left behind on failure.
 */
import { execFile } from 'node:child_process';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { BAD_REQUESTS, file } from '../helpers/error-cases.ts';
import { get, post } from '../helpers/http.ts';
import { buildMultipart, CONTENT_TYPE, generatedBytes, sha256, streamMultipart } from '../helpers/multipart.ts';
import { readBack } from '../helpers/s3-inspect.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

let s3: TestS3rver;
let server: RunningServer;
let url: string;

async function startWith(env: Record<string, string>): Promise<RunningServer> {
  const config = loadConfig({
    PORT: '0',
    UPLOAD_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    S3_PART_BYTES: String(PART),
    UPLOAD_MAX_FILE_BYTES: String(64 * MiB),
    UPLOAD_MAX_FILES: '4',
    UPLOAD_MAX_FIELDS: '4',
    UPLOAD_MAX_TOTAL_BYTES: String(100 * MiB),
    ...env,
  });
  return startServer(config, { s3: { credentials: S3RVER_CREDENTIALS }, logger: createLogger('silent') });
}

beforeAll(async () => {
  s3 = await startS3rver();
  server = await startWith({});
  url = server.url;
});

afterAll(async () => {
  await server?.close();
  await s3?.close();
});

async function listKeys(): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

interface FilesBody {
  files: Array<{ field: string; filename: string; key: string; size: number; contentType: string; etag: string }>;
  fields: Record<string, unknown>;
}

describe('POST /uploads stores byte-exact objects', () => {
  it.each([
    ['1 byte', 1],
    ['empty file', 0],
    ['exactly one part', PART],
    ['one part + 1 byte', PART + 1],
    ['three parts and a bit', 3 * PART + 12345],
  ])('%s (%d bytes), streamed with chunked encoding', async (_label, size) => {
    const body = streamMultipart(
      [{ name: 'file', filename: 'data.bin', size, seed: size + 1 }],
      [{ name: 'note', value: 'hello' }],
    );
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(201);
    const json = res.json as FilesBody;
    expect(json.fields).toEqual({ note: 'hello' });
    expect(json.files).toHaveLength(1);
    const file = json.files[0]!;
    expect(file).toMatchObject({ field: 'file', filename: 'data.bin', size, contentType: 'application/octet-stream' });
    expect(file.key).toMatch(/^uploads\/[0-9a-f-]{36}\/data\.bin$/);
    const back = await readBack(s3.client, s3.bucket, file.key);
    expect(back.size).toBe(size);
    expect(back.sha256).toBe(body.sha256[0]);
    expect(back.metadata).toMatchObject({ 'original-filename': 'data.bin', note: 'hello' });
  });

  it('several files with UTF-8 names and a Content-Length body', async () => {
    const body = streamMultipart(
      [
        { name: 'a', filename: 'résumé.pdf', size: 1000, seed: 1, contentType: 'application/pdf' },
        { name: 'b', filename: '日本語 ファイル.txt', size: PART + 7, seed: 2, contentType: 'text/plain' },
        { name: 'c', filename: 'emoji 😀.bin', size: 3, seed: 3 },
      ],
      [{ name: 'owner', value: 'Zoë' }],
    );
    const res = await post(`${url}/uploads`, body.stream, {
      headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length },
    });
    expect(res.status).toBe(201);
    const json = res.json as FilesBody;
    expect(json.files.map((f) => f.filename)).toEqual(['résumé.pdf', '日本語 ファイル.txt', 'emoji 😀.bin']);
    expect(json.files.map((f) => f.contentType)).toEqual(['application/pdf', 'text/plain', 'application/octet-stream']);
    for (const [i, f] of json.files.entries()) {
      const back = await readBack(s3.client, s3.bucket, f.key);
      expect(back.sha256).toBe(body.sha256[i]);
      expect(decodeURIComponent(back.metadata['original-filename']!)).toBe(f.filename);
      expect(decodeURIComponent(back.metadata['owner']!)).toBe('Zoë');
      expect(f.key).toMatch(/^uploads\/[0-9a-f-]{36}(\/[A-Za-z0-9._-]+)?$/);
    }
  });

  it('curl -F streams a file from disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'curl-'));
    try {
      const path = join(dir, 'from curl.bin');
      await writeFile(path, Buffer.concat([...generatedBytes(PART + 3, 42)]));
      const { stdout } = await promisify(execFile)('curl', ['-sS', '-F', 'tag=x', '-F', `file=@${path}`, `${url}/uploads`]);
      const json = JSON.parse(stdout) as FilesBody;
      expect(json.files[0]).toMatchObject({ filename: 'from curl.bin', size: PART + 3 });
      expect((await readBack(s3.client, s3.bucket, json.files[0]!.key)).sha256).toBe(
        sha256(Buffer.concat([...generatedBytes(PART + 3, 42)])),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('NDJSON progress (Accept: application/x-ndjson)', () => {
  it('streams file-started, file-progress, file-stored, done with status 200', async () => {
    const size = 3 * MiB + 5;
    const body = streamMultipart([{ name: 'f', filename: 'p.bin', size, seed: 9 }]);
    const res = await post(`${url}/uploads`, body.stream, {
      headers: { 'content-type': CONTENT_TYPE, accept: 'application/x-ndjson' },
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-ndjson');
    const lines = res.lines as Array<{ type: string; bytes?: number; size?: number; key?: string }>;
    expect(lines[0]).toMatchObject({ type: 'file-started', filename: 'p.bin' });
    expect(lines.filter((l) => l.type === 'file-progress').length).toBeGreaterThanOrEqual(1);
    const stored = lines.find((l) => l.type === 'file-stored');
    expect(stored).toMatchObject({ size, key: lines[0]!.key });
    expect(lines.at(-1)).toMatchObject({ type: 'done', files: [{ size }], fields: {} });
  });

  it('a failure after the first byte is a final error line', async () => {
    const body = streamMultipart([{ name: 'f', filename: 'big.bin', size: 65 * MiB, seed: 1 }]);
    const before = await listKeys();
    const res = await post(`${url}/uploads`, body.stream, {
      headers: { 'content-type': CONTENT_TYPE, accept: 'application/x-ndjson' },
    });
    expect(res.status).toBe(200);
    expect(res.lines.at(-1)).toMatchObject({ type: 'error', code: 'FILE_TOO_LARGE', message: expect.any(String) });
    expect(await listKeys()).toEqual(before);
  });

  it('a failure before the first byte keeps its status', async () => {
    const res = await post(`${url}/uploads`, 'x', { headers: { 'content-type': 'text/plain', accept: 'application/x-ndjson' } });
    expect(res.status).toBe(415);
    expect(res.json).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });
});

describe('errors: stable code, nothing stored, server stays up', () => {
  it.each(BAD_REQUESTS)('%s -> %d %s', async (_label, headers, body, status, code) => {
    const before = await listKeys();
    const res = await post(`${url}/uploads`, body, { headers });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json).toEqual({ error: { code, message: expect.any(String) } });
    expect(await listKeys()).toEqual(before);
    expect((await get(`${url}/healthz`)).status).toBe(200);
  });

  it('a file over the limit -> 413 FILE_TOO_LARGE, multipart upload aborted, earlier file deleted', async () => {
    const before = await listKeys();
    const body = streamMultipart([
      { name: 'small', filename: 's.bin', size: 100, seed: 1 },
      { name: 'big', filename: 'b.bin', size: 64 * MiB + 1, seed: 2 },
    ]);
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(413);
    const error = (res.json as { error: { code: string; message: string; deleted?: string[] } }).error;
    expect(error.code).toBe('FILE_TOO_LARGE');
    expect(error.deleted).toHaveLength(1);
    expect(error.message).toMatch(/was deleted/);
    expect(await listKeys()).toEqual(before);
  });

  it('a body over the total limit -> 413 PAYLOAD_TOO_LARGE', async () => {
    const small = await startWith({ UPLOAD_MAX_TOTAL_BYTES: String(6 * MiB) });
    try {
      const before = await listKeys();
      const body = streamMultipart([{ name: 'f', filename: 'f.bin', size: 7 * MiB, seed: 5 }]);
      const res = await post(`${small.url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
      expect(res.status).toBe(413);
      expect(res.json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
      expect(await listKeys()).toEqual(before);
    } finally {
      await small.close();
    }
  });

  it('the object store failing -> 502 STORAGE_FAILED without internals', async () => {
    const broken = await startWith({ UPLOAD_BUCKET: 'no-such-bucket' });
    try {
      const res = await post(`${broken.url}/uploads`, buildMultipart([file(10)]), { headers: { 'content-type': CONTENT_TYPE } });
      expect(res.status).toBe(502);
      expect(res.json).toEqual({
        error: { code: 'STORAGE_FAILED', message: expect.stringMatching(/^The object store failed to store the file/) },
      });
      expect(res.text).not.toMatch(/at .*\.ts|stack/);
    } finally {
      await broken.close();
    }
  });

  it('unknown routes and methods', async () => {
    expect((await get(`${url}/nope`)).status).toBe(404);
    const res = await fetch(`${url}/uploads`);
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(await res.json()).toMatchObject({ error: { code: 'METHOD_NOT_ALLOWED' } });
    expect(await get(`${url}/healthz`)).toEqual({ status: 200, text: '{"status":"ok"}' });
  });

  it('a client that disconnects mid-upload leaves nothing, and the server keeps serving', async () => {
    const before = await listKeys();
    const body = streamMultipart([{ name: 'f', filename: 'cut.bin', size: 32 * MiB, seed: 11 }]);
    await new Promise<void>((resolve) => {
      const req = request(`${url}/uploads`, { method: 'POST', headers: { 'content-type': CONTENT_TYPE } });
      req.on('error', () => resolve());
      let sent = 0;
      body.stream.on('data', (chunk: Buffer) => {
        sent += chunk.length;
        if (!req.write(chunk)) body.stream.pause();
        if (sent > 12 * MiB) {
          body.stream.destroy();
          req.destroy();
          resolve();
        }
      });
      req.on('drain', () => body.stream.resume());
    });
    // The abort is asynchronous on the server: wait until it settled.
    await new Promise((r) => setTimeout(r, 500));
    expect(await listKeys()).toEqual(before);
    const ok = await post(`${url}/uploads`, buildMultipart([file(5)]), { headers: { 'content-type': CONTENT_TYPE } });
    expect(ok.status).toBe(201);
  });
});

describe('slow clients cannot hold the server', () => {
  let strict: RunningServer;
  beforeAll(async () => {
    strict = await startWith({ UPLOAD_HEADERS_TIMEOUT_MS: '400', UPLOAD_IDLE_TIMEOUT_MS: '600' });
  });
  afterAll(async () => {
    await strict?.close();
  });

  /** Opens a raw connection, writes `data`, resolves with what came back when the server closed it. */
  function holdOpen(data: string | Buffer, maxMs: number): Promise<{ closedByServer: boolean; reply: string; ms: number }> {
    const { port } = new URL(strict.url);
    const t0 = Date.now();
    return new Promise((resolve) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write(data));
      let reply = '';
      socket.on('data', (d: Buffer) => (reply += d.toString()));
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ closedByServer: false, reply, ms: Date.now() - t0 });
      }, maxMs);
      socket.on('close', () => {
        clearTimeout(timer);
        resolve({ closedByServer: true, reply, ms: Date.now() - t0 });
      });
      socket.on('error', () => {});
    });
  }

  it('closes a connection whose headers never finish', async () => {
    const res = await holdOpen('POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Type: multip', 10_000);
    expect(res.closedByServer).toBe(true);
    expect(res.reply).toMatch(/^(HTTP\/1\.1 408|$)/);
  });

  it('closes an upload that stops sending, aborts it, and stores nothing', async () => {
    const before = await listKeys();
    const body = buildMultipart([{ name: 'f', filename: 'stall.bin', data: Buffer.alloc(100_000, 1) }]);
    const head = `POST /uploads HTTP/1.1\r\nHost: x\r\nContent-Type: ${CONTENT_TYPE}\r\nContent-Length: ${body.length}\r\n\r\n`;
    const res = await holdOpen(Buffer.concat([Buffer.from(head), body.subarray(0, 50_000)]), 10_000);
    expect(res.closedByServer).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(await listKeys()).toEqual(before);
    expect((await get(`${strict.url}/healthz`)).status).toBe(200);
  });
});

describe('bearer token (UPLOAD_AUTH_TOKEN)', () => {
  const TOKEN = 'test-token-0123456789abcdef';
  let guarded: RunningServer;
  beforeAll(async () => {
    guarded = await startWith({ UPLOAD_AUTH_TOKEN: TOKEN });
  });
  afterAll(async () => {
    await guarded?.close();
  });

  it.each([
    ['no header', {}],
    ['wrong token', { authorization: 'Bearer test-token-0123456789abcdeX' }],
    ['token as prefix', { authorization: `Bearer ${TOKEN}x` }],
    ['basic auth', { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` }],
  ])('refuses %s with 401 UNAUTHORIZED before reading the body', async (_label, auth) => {
    const before = await listKeys();
    const res = await post(`${guarded.url}/uploads`, buildMultipart([{ name: 'f', filename: 'a.txt', data: 'a' }]), {
      headers: { 'content-type': CONTENT_TYPE, ...auth },
    });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(res.json).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    expect(await listKeys()).toEqual(before);
  });

  it('accepts the right token, and leaves /healthz open', async () => {
    const res = await post(`${guarded.url}/uploads`, buildMultipart([{ name: 'f', filename: 'a.txt', data: 'a' }]), {
      headers: { 'content-type': CONTENT_TYPE, authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(201);
    expect((await get(`${guarded.url}/healthz`)).status).toBe(200);
  });
});

describe('object metadata', () => {
  it('keeps the original name and Content-Disposition on the object', async () => {
    const res = await post(
      `${url}/uploads`,
      buildMultipart([
        { name: 'f', filename: 'x', filenameStar: "UTF-8''%E2%82%AC%20rates.csv", data: 'a,b', contentType: 'text/csv' },
      ]),
      { headers: { 'content-type': CONTENT_TYPE } },
    );
    const key = (res.json as FilesBody).files[0]!.key;
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }));
    expect(head.ContentType).toBe('text/csv');
    expect(head.ContentDisposition).toBe(`attachment; filename="rates.csv"; filename*=UTF-8''%E2%82%AC%20rates.csv`);
    expect(decodeURIComponent(head.Metadata!['original-filename']!)).toBe('€ rates.csv');
  });
});
