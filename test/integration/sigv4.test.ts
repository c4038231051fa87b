/**
 * The client library and the CLI through a SigV4-verifying front (test/helpers/sigv4-front.ts,
 * the IAM check of a Function URL with a real payload hash), on both lanes, against the Node
 * server and radosgw: every call to the service is signed and accepted, the part PUTs to S3
 * carry only their presigned URLs, caller fields end up in the objects' metadata, and
 * unsigned or tampered requests are refused before they reach the service.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createUploadClient, UploadClientError, type FetchLike } from '../../src/client/index.ts';
import { createSigner, sha256Hex } from '../../src/client/sigv4.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { writeGeneratedFile } from '../helpers/generated-file.ts';
import { sha256 } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { destroyBucket, listOpenUploads, readBack } from '../helpers/s3-inspect.ts';
import { startSigV4Front, type SigV4Front } from '../helpers/sigv4-front.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIDCALLER0000000001', secretAccessKey: 'caller-secret-0000000000000000000000000' };
const CLI = new URL('../../src/client/cli.ts', import.meta.url).pathname;

describe.skipIf(!endpoint)('SigV4 through a verifying front: library and CLI, both lanes', () => {
  let s3: S3Client;
  let bucket: string;
  let server: RunningServer;
  let front: SigV4Front;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sigv4-'));
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('sigv4'));
    server = await startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        S3_PART_BYTES: String(5 * MiB),
        UPLOAD_SESSION_SECRET: 'sigv4-test-secret-0123456789abcdef',
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );
    front = await startSigV4Front({ target: server.url, region: REGION, service: 'lambda', credentials: CREDENTIALS });
  });

  afterAll(async () => {
    await front?.close();
    await server?.close();
    if (s3) {
      await destroyBucket(s3, bucket);
      s3.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('library: a path, a Buffer and a stream through POST /uploads, a large file through a session, all signed', async () => {
    const small = join(dir, 'small.txt');
    const big = join(dir, 'big.bin');
    const smallSha = await writeGeneratedFile(small, 300_000, 1);
    const bigSha = await writeGeneratedFile(big, 12 * MiB, 2);
    const data = Buffer.from('bytes from memory, ünïcode');
    const streamed = Buffer.alloc(70_000, 7);
    const seen: Array<{ method: string; url: string; headers: Headers }> = [];
    const recording: FetchLike = (input, init) => {
      seen.push({ method: init?.method ?? 'GET', url: String(input), headers: new Headers(init?.headers) });
      return fetch(input, init);
    };
    const client = createUploadClient({
      url: front.url,
      fetch: recording,
      streamMaxBytes: 4 * MiB,
      sigv4: { region: REGION, service: 'lambda', credentials: async () => CREDENTIALS },
    });
    front.requests.length = 0;
    const files = await client.upload(
      [
        small,
        { data, name: 'memo.txt' },
        {
          stream: Readable.from([streamed.subarray(0, 30_000), streamed.subarray(30_000)]),
          size: streamed.length,
          name: 's.bin',
        },
        big,
      ],
      { fields: { customer: 'c-42', 'Order Ref': 'ö-1' } },
    );
    expect(files.map((f) => [f.filename, f.lane])).toEqual([
      ['small.txt', 'stream'],
      ['memo.txt', 'stream'],
      ['s.bin', 'stream'],
      ['big.bin', 'direct'],
    ]);
    const want = [smallSha, sha256(data), sha256(streamed), bigSha];
    for (const [i, f] of files.entries()) {
      const back = await readBack(s3, bucket, f.key);
      expect(back.sha256).toBe(want[i]);
      // The same metadata rules on both lanes: header-token keys, percent-encoded values.
      expect(back.metadata).toMatchObject({ customer: 'c-42', 'order-ref': '%C3%B6-1' });
    }

    // Every call that reached the service was signed and verified; none was refused.
    expect(front.requests.map((r) => r.verdict)).toEqual(front.requests.map(() => 'ok'));
    expect(front.requests.map((r) => `${r.method} ${r.path.replace(/sessions\/[^/]+/, 'sessions/ID')}`)).toEqual([
      'POST /uploads',
      'POST /uploads/sessions',
      'POST /uploads/sessions/ID/complete',
    ]);
    const toService = seen.filter((s) => s.url.startsWith(front.url));
    const toS3 = seen.filter((s) => !s.url.startsWith(front.url));
    expect(toService.every((s) => /^AWS4-HMAC-SHA256 /.test(s.headers.get('authorization') ?? ''))).toBe(true);
    expect(toS3.map((s) => s.method)).toEqual(['PUT', 'PUT', 'PUT']);
    expect(toS3.some((s) => s.headers.has('authorization') || s.headers.has('x-amz-content-sha256'))).toBe(false);
    // One Idempotency-Key on the stream-through POST.
    expect(toService[0]!.headers.get('idempotency-key')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('CLI: --sigv4 REGION with credentials from the environment, --field, both lanes', async () => {
    const small = join(dir, 'cli-small.txt');
    const big = join(dir, 'cli-big.bin');
    const smallSha = await writeGeneratedFile(small, 1000, 3);
    const bigSha = await writeGeneratedFile(big, 6 * MiB, 4);
    front.requests.length = 0;
    const res = await runCli(['put', small, big, '--url', front.url, '--sigv4', REGION, '--field', 'team=billing', '--json']);
    expect([res.code, res.stderr]).toEqual([0, '']);
    const { files } = JSON.parse(res.stdout) as { files: Array<{ key: string; lane: string }> };
    expect(files.map((f) => f.lane)).toEqual(['stream', 'direct']);
    for (const [i, f] of files.entries()) {
      const back = await readBack(s3, bucket, f.key);
      expect(back.sha256).toBe([smallSha, bigSha][i]);
      expect(back.metadata['team']).toBe('billing');
    }
    expect(front.requests.length).toBe(3);
    expect(front.requests.every((r) => r.verdict === 'ok')).toBe(true);
  });

  it('CLI: without credentials, or with the wrong ones, nothing is stored', async () => {
    const file = join(dir, 'cli-refused.txt');
    await writeGeneratedFile(file, 100, 5);
    const wrong = await runCli(['put', file, '--url', front.url, '--sigv4', `${REGION}:lambda`, '--json'], {
      AWS_SECRET_ACCESS_KEY: 'not-the-secret-00000000000000000000000',
    });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ error: { status: 403 } });
    expect(front.requests.at(-1)!.verdict).toBe('signature does not match');
    const bare = await runCli(['put', file, '--url', front.url, '--sigv4', '--json']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toMatch(/Cannot infer the SigV4 region/);
  });

  it('refuses unsigned and tampered requests before they reach the service', async () => {
    front.requests.length = 0;
    const unsigned = createUploadClient({ url: front.url });
    const err = await unsigned.upload([{ data: Buffer.from('x'), name: 'x.txt' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadClientError);
    expect(err).toMatchObject({ status: 403 });

    const sign = createSigner({ region: REGION, credentials: CREDENTIALS }, front.url);
    const body = JSON.stringify({ filename: 'a.bin', size: 6 * MiB });
    const url = `${front.url}/uploads/sessions`;
    const signed = await sign({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json' },
      payloadHash: sha256Hex(body),
    });
    const send = (headers: Record<string, string>, payload: string) => fetch(url, { method: 'POST', headers, body: payload });

    // Same length, one byte changed: the payload hash no longer matches.
    expect((await send(signed, body.replace('a.bin', 'b.bin'))).status).toBe(403);
    // The body and its hash changed together: the signature no longer matches.
    expect((await send({ ...signed, 'x-amz-content-sha256': sha256Hex(body + ' ') }, body + ' ')).status).toBe(403);
    // A signed header changed.
    expect((await send({ ...signed, 'content-type': 'text/plain' }, body)).status).toBe(403);
    // Another region in the scope.
    const otherRegion = await createSigner(
      { region: 'us-east-1', credentials: CREDENTIALS },
      front.url,
    )({
      method: 'POST',
      url,
      headers: {},
      payloadHash: sha256Hex(body),
    });
    expect((await send(otherRegion, body)).status).toBe(403);
    // The untouched request goes through (and its session is aborted again below).
    const ok = await send(signed, body);
    expect(ok.status).toBe(201);
    const session = (await ok.json()) as { sessionId: string };
    const del = `${front.url}/uploads/sessions/${session.sessionId}`;
    const delHeaders = await sign({ method: 'DELETE', url: del, headers: {}, payloadHash: sha256Hex('') });
    expect((await fetch(del, { method: 'DELETE', headers: delHeaders })).status).toBe(204);

    expect(front.requests.map((r) => r.verdict)).toEqual([
      'no SigV4 authorization header',
      'payload hash does not match the body',
      'signature does not match',
      'signature does not match',
      'wrong scope us-east-1/lambda',
      'ok',
      'ok',
    ]);
    expect(await listOpenUploads(s3, bucket)).toEqual([]);
  });

  function runCli(
    args: string[],
    env: Record<string, string> = {},
  ): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: {
          PATH: process.env['PATH'],
          HOME: dir,
          // The SDK's default chain, from the environment only (no profile, no instance role).
          AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
          AWS_EC2_METADATA_DISABLED: 'true',
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
});
