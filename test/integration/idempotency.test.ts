/**
 * Idempotent retries against real S3 servers. The record store's contract runs against the
 * in-memory store, s3rver and radosgw (with what each honours of S3 conditional writes, as
 * probed). Then the whole path: a test proxy in front of the service drops the first answer
 * (the upload took effect, the client cannot know), the client retries with the same key and
 * gets the first answer, and the bucket holds exactly one object per file; on the Node server
 * against radosgw (no multipart upload left open) and on the Lambda bundle against s3rver.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { urlEvent } from '../../scripts/make-events.mjs';
import { loadConfig } from '../../src/config.ts';
import type { IdempotencyRecord, IdempotencyStore } from '../../src/core/idempotency-store.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { createS3IdempotencyStore, probeConditionalWrites } from '../../src/storage/s3-idempotency.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { post } from '../helpers/http.ts';
import { closeFunctions, invoke, loadFunction } from '../helpers/lambda.ts';
import { MemoryIdempotencyStore } from '../helpers/memory-idempotency-store.ts';
import { buildMultipart, CONTENT_TYPE, sha256 } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';
import { listKeys, listOpenUploads, readBack } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const RECORDS = 'uploads/.idempotency/';

const record = (state: IdempotencyRecord['state'], extra: Partial<IdempotencyRecord> = {}): IdempotencyRecord => ({
  state,
  startedAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  ...extra,
});

let s3: TestS3rver;
beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.close();
});

type StoreCase = { name: string; make: () => Promise<IdempotencyStore>; conditional: boolean };
const stores: StoreCase[] = [
  { name: 'memory', make: async () => new MemoryIdempotencyStore(), conditional: true },
  {
    name: 's3rver',
    make: async () => createS3IdempotencyStore({ client: s3.client, bucket: s3.bucket, prefix: `t-${Date.now()}/` }),
    conditional: false,
  },
  ...(endpoint
    ? [
        {
          name: 'radosgw',
          make: async () => {
            const client = radosgwClient(endpoint);
            const bucket = await createTestBucket(client, uniqueBucketName('idem-store'));
            return createS3IdempotencyStore({ client, bucket, prefix: RECORDS });
          },
          conditional: true,
        },
      ]
    : []),
];

describe.each(stores)('IdempotencyStore contract: $name', ({ make, conditional }) => {
  it('creates if absent, else returns the record there', async () => {
    const store = await make();
    const created = await store.create('a', record('in-progress'));
    expect(created).toEqual({ version: expect.any(String) });
    const again = await store.create('a', record('in-progress', { startedAt: 'other' }));
    expect(again).toEqual({ existing: { record: record('in-progress'), version: (created as { version: string }).version } });
  });

  it('replaces only the version it read', async () => {
    const store = await make();
    const { version } = (await store.create('b', record('in-progress'))) as { version: string };
    const done = record('completed', { fingerprint: 'f', answer: { files: [], fields: { a: 'b' } } });
    const next = await store.replace('b', done, version);
    expect(next).toEqual(expect.any(String));
    expect(await store.create('b', record('in-progress'))).toMatchObject({ existing: { record: done } });
    if (conditional) expect(await store.replace('b', record('in-progress'), version)).toBeUndefined();
  });

  it('puts unconditionally and deletes (an absent record too)', async () => {
    const store = await make();
    await store.put('c', record('completed'));
    expect(await store.create('c', record('in-progress'))).toMatchObject({ existing: { record: { state: 'completed' } } });
    await store.delete('c');
    await store.delete('c');
    expect(await store.create('c', record('in-progress'))).toEqual({ version: expect.any(String) });
  });

  it.skipIf(!conditional)('lets exactly one of many concurrent creators win', async () => {
    const store = await make();
    const results = await Promise.all(Array.from({ length: 8 }, () => store.create('d', record('in-progress'))));
    expect(results.filter((r) => 'version' in r)).toHaveLength(1);
  });
});

describe('conditional writes, as probed', () => {
  it('s3rver honours none of them (the Node server then relies on its in-process lock)', async () => {
    expect(await probeConditionalWrites(s3.client, s3.bucket, 'probe/')).toEqual({ ifNoneMatch: false, ifMatch: 'none' });
    expect(await listKeys(s3.client, s3.bucket, 'probe/')).toEqual([]);
  });

  it.skipIf(!endpoint)('radosgw 16 honours If-None-Match, and If-Match with the ETag unquoted', async () => {
    const client = radosgwClient(endpoint);
    const bucket = await createTestBucket(client, uniqueBucketName('idem-probe'));
    expect(await probeConditionalWrites(client, bucket, 'probe/')).toEqual({ ifNoneMatch: true, ifMatch: 'unquoted' });
    expect(await listKeys(client, bucket, 'probe/')).toEqual([]);
  });
});

const FILES = [
  { name: 'doc', filename: 'report.pdf', data: Buffer.alloc(200 * 1024, 3), contentType: 'application/pdf' },
  { name: 'big', filename: 'big.bin', data: Buffer.alloc(6 * MiB + 17, 9) },
];
const BODY = buildMultipart([{ name: 'owner', value: 'billing' }, ...FILES]);
/** Lambda takes 6 MB of body: a smaller second file. */
const LAMBDA_FILES = [FILES[0]!, { ...FILES[1]!, data: Buffer.alloc(3 * MiB + 17, 9) }];
const LAMBDA_BODY = buildMultipart([{ name: 'owner', value: 'billing' }, ...LAMBDA_FILES]);

/** Keys of stored uploads (records aside). */
async function uploadKeys(client: S3Client, bucket: string): Promise<string[]> {
  return (await listKeys(client, bucket, 'uploads/')).filter((k) => !k.startsWith(RECORDS)).sort();
}

/** Posts through the proxy; the first answer is dropped (connection reset after the service answered). */
async function postThroughDroppingProxy(proxy: FaultProxy, headers: Record<string, string>, body = BODY) {
  proxy.setRules([{ match: (r) => r.pathname === '/uploads', times: 1, action: 'drop-response' }]);
  await expect(post(`${proxy.url}/uploads`, body, { headers })).rejects.toThrow(/socket hang up|ECONNRESET/);
  expect(proxy.injected['drop-response']).toBe(1);
  return post(`${proxy.url}/uploads`, body, { headers });
}

async function expectOneObjectPerFile(
  client: S3Client,
  bucket: string,
  answer: { files: Array<{ key: string; sha256: string }> },
  files = FILES,
) {
  const keys = await uploadKeys(client, bucket);
  expect(keys).toEqual(answer.files.map((f) => f.key).sort());
  for (const [i, file] of answer.files.entries()) {
    expect(file.sha256).toBe(sha256(files[i]!.data));
    expect((await readBack(client, bucket, file.key)).sha256).toBe(file.sha256);
  }
}

describe.skipIf(!endpoint)('Node server on radosgw: the first answer lost, the retry gets it', () => {
  let client: S3Client;
  let bucket: string;
  let servers: RunningServer[];
  let proxy: FaultProxy;

  const start = () =>
    startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        UPLOAD_MAX_FILE_BYTES: String(8 * MiB),
        UPLOAD_MEMORY_BYTES: String(64 * MiB),
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );

  beforeAll(async () => {
    client = radosgwClient(endpoint);
    bucket = await createTestBucket(client, uniqueBucketName('idem-node'));
    servers = [await start(), await start()];
    proxy = await startFaultProxy(servers[0]!.url);
  });
  afterAll(async () => {
    await proxy?.close();
    for (const s of servers ?? []) await s.close();
    client?.destroy();
  });

  const clean = async () => {
    for (const key of await listKeys(client, bucket, 'uploads/')) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    }
  };

  it('leaves exactly one object per file and answers the retry with the first answer', async () => {
    await clean();
    const headers = { 'content-type': CONTENT_TYPE, 'idempotency-key': 'job-1' };
    const retry = await postThroughDroppingProxy(proxy, headers);
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    const answer = retry.json as { files: Array<{ key: string; sha256: string }>; fields: unknown };
    expect(answer.fields).toEqual({ owner: 'billing' });
    await expectOneObjectPerFile(client, bucket, answer);
    // The dropped answer is the one recorded: the retry's body is it, byte for byte.
    const [recordKey] = (await listKeys(client, bucket, RECORDS)).filter((k) => !k.includes('probe-'));
    const stored = JSON.parse(
      await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: recordKey }))).Body!.transformToString(),
    ) as IdempotencyRecord;
    expect(stored.state).toBe('completed');
    expect(JSON.stringify(stored.answer)).toBe(retry.text);
    expect(await listOpenUploads(client, bucket)).toEqual([]);
  });

  it('a retry on another instance while the first runs gets 409, then the replay; one copy in all', async () => {
    await clean();
    const headers = { 'content-type': CONTENT_TYPE, 'content-length': String(BODY.length), 'idempotency-key': 'job-2' };
    const slow = new PassThrough();
    const first = post(`${servers[0]!.url}/uploads`, slow, { headers });
    slow.write(BODY.subarray(0, 300 * 1024));
    await sleep(300);
    const during = await post(`${servers[1]!.url}/uploads`, BODY, { headers });
    expect(during.status).toBe(409);
    expect(during.headers['retry-after']).toBe('2');
    expect(during.json).toMatchObject({ error: { code: 'IDEMPOTENCY_IN_PROGRESS' } });
    slow.end(BODY.subarray(300 * 1024));
    const done = await first;
    expect(done.status).toBe(201);
    const after = await post(`${servers[1]!.url}/uploads`, BODY, { headers });
    expect(after.text).toBe(done.text);
    await expectOneObjectPerFile(client, bucket, done.json as { files: Array<{ key: string; sha256: string }> });
    expect(await listOpenUploads(client, bucket)).toEqual([]);
  });

  it('a different body under a used key is refused with 422 and stores nothing', async () => {
    const headers = { 'content-type': CONTENT_TYPE, 'idempotency-key': 'job-2' };
    const before = await uploadKeys(client, bucket);
    const other = buildMultipart([
      { name: 'owner', value: 'billing' },
      { ...FILES[0]!, data: Buffer.alloc(10, 1) },
    ]);
    const res = await post(`${servers[0]!.url}/uploads`, other, { headers });
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect(await uploadKeys(client, bucket)).toEqual(before);
    expect(await listOpenUploads(client, bucket)).toEqual([]);
  });

  it('a failed first request removes its record: the retry runs afresh', async () => {
    await clean();
    const headers = { 'content-type': CONTENT_TYPE, 'idempotency-key': 'job-3' };
    const tooBig = buildMultipart([{ name: 'f', filename: 'huge.bin', data: Buffer.alloc(8 * MiB + 1) }]);
    expect((await post(`${servers[0]!.url}/uploads`, tooBig, { headers })).status).toBe(413);
    expect((await listKeys(client, bucket, RECORDS)).filter((k) => !k.includes('probe-'))).toEqual([]);
    const retry = await post(`${servers[0]!.url}/uploads`, BODY, { headers });
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBeUndefined();
    await expectOneObjectPerFile(client, bucket, retry.json as { files: Array<{ key: string; sha256: string }> });
    expect(await listOpenUploads(client, bucket)).toEqual([]);
  });
});

describe('Lambda bundle on s3rver: the first answer lost, the retry gets it', () => {
  let front: Server;
  let proxy: FaultProxy;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = {
      UPLOAD_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      UPLOAD_MAX_FILE_BYTES: String(8 * MiB),
      LOG_LEVEL: 'silent',
    };
    const handler = await loadFunction(env);
    // A Function URL stand-in: each HTTP request becomes one invocation of the bundle.
    front = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
        void invoke(handler, urlEvent({ method: req.method, path: req.url, headers, body: Buffer.concat(chunks) })).then(
          (out) => {
            res.writeHead(out.statusCode!, out.headers);
            res.end(out.body);
          },
        );
      });
    });
    front.listen(0, '127.0.0.1');
    await new Promise((resolve) => front.once('listening', resolve));
    proxy = await startFaultProxy(`http://127.0.0.1:${(front.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    await proxy?.close();
    await new Promise((resolve) => front?.close(resolve));
    // The sandboxes are frozen (SIGSTOP) between invocations: left open, they outlive the suite.
    await closeFunctions();
  });

  it('leaves exactly one object per file and answers the retry with the first answer', async () => {
    const headers = { 'content-type': CONTENT_TYPE, 'idempotency-key': 'lambda-job-1' };
    const retry = await postThroughDroppingProxy(proxy, headers, LAMBDA_BODY);
    expect(retry.status).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    const answer = retry.json as { files: Array<{ key: string; sha256: string }> };
    await expectOneObjectPerFile(s3.client, s3.bucket, answer, LAMBDA_FILES);
    // Another instance (a fresh cold start of the bundle: nothing shared but the bucket) replays it too.
    const other = await loadFunction(env);
    const again = await invoke(other, urlEvent({ headers, body: LAMBDA_BODY }));
    expect(again.statusCode).toBe(201);
    expect(again.body).toBe(retry.text);
    expect(await uploadKeys(s3.client, s3.bucket)).toHaveLength(2);
  });
});
