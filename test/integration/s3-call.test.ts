/**
 * S3 calls with settings of their own on the service's client (src/storage/s3-call.ts):
 * the abort signal and UNSIGNED-PAYLOAD reach the wire without send() options, so the SDK's
 * middleware cache holds across calls; a client not made by createS3Client gets the options.
 * Against a stand-in S3 over HTTP that records the headers and can hold its answer.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { sendS3 } from '../../src/storage/s3-call.ts';
import { createS3Client } from '../../src/storage/s3-client.ts';
import { createTestBucket, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, radosgwClient, uniqueBucketName } from '../helpers/radosgw.ts';

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' };

let server: Server;
let endpoint: string;
const seen: IncomingMessage[] = [];
/** Requests whose socket closed before an answer. */
let cut = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(req);
    req.resume();
    req.on('end', () => {
      if (req.url?.includes('hold')) {
        res.on('close', () => {
          if (!res.writableEnded) cut++;
        });
        return;
      }
      res.writeHead(200, { etag: '"abc"' }).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function serviceClient(): S3Client {
  const config = loadConfig({ S3_ENDPOINT: endpoint, UPLOAD_BUCKET: 'bench', AWS_REGION: 'us-east-1' });
  return createS3Client(config.s3, { credentials });
}

const put = (key: string) => new PutObjectCommand({ Bucket: 'bench', Key: key, Body: Buffer.from('hello'), ContentLength: 5 });

describe.each([
  { name: 'the service client (settings on the input)', make: serviceClient },
  {
    name: 'a plain S3Client (send options)',
    make: () => new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1 }),
  },
])('$name', ({ make }) => {
  it('signs with UNSIGNED-PAYLOAD only when asked', async () => {
    const client = make();
    seen.length = 0;
    await sendS3(client, put('u'), { unsignedPayload: true }, (c, o) => client.send(c, o));
    await sendS3(client, put('s'), {}, (c, o) => client.send(c, o));
    expect(seen.map((r) => r.headers['x-amz-content-sha256'])).toEqual([
      'UNSIGNED-PAYLOAD',
      expect.stringMatching(/^[0-9a-f]{64}$/),
    ]);
    client.destroy();
  });

  it('an aborted signal cuts the call in flight', async () => {
    const client = make();
    const before = cut;
    const controller = new AbortController();
    const call = sendS3(client, put('hold'), { signal: controller.signal }, (c, o) => client.send(c, o));
    await new Promise((r) => setTimeout(r, 200));
    controller.abort(new Error('stop'));
    await expect(call).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(cut).toBe(before + 1);
    client.destroy();
  });
});

it('the service client resolves a command’s middleware once, signals or not', async () => {
  const client = serviceClient();
  let resolved = 0;
  client.middlewareStack.add(
    (next) => {
      resolved++;
      return next;
    },
    { step: 'initialize', name: 'countResolutions' },
  );
  for (let i = 0; i < 3; i++) {
    await sendS3(client, put(`c${i}`), { signal: new AbortController().signal }, (c, o) => client.send(c, o));
  }
  expect(resolved).toBe(1);
  // What the cache avoids: a call with send() options resolves the chain again.
  await client.send(put('o'), { abortSignal: new AbortController().signal });
  expect(resolved).toBe(2);
  client.destroy();
});

const radosgw = inject('radosgwEndpoint');

describe.skipIf(!radosgw)('on radosgw, which checks signatures', () => {
  it('accepts the service client’s UNSIGNED-PAYLOAD and signed calls, and stores the bytes', async () => {
    const admin = radosgwClient(radosgw);
    const bucket = await createTestBucket(admin, uniqueBucketName('s3call'));
    const config = loadConfig({ S3_ENDPOINT: radosgw, UPLOAD_BUCKET: bucket, AWS_REGION: 'us-east-1' });
    const client = createS3Client(config.s3, {
      credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY },
    });
    for (const unsignedPayload of [true, false]) {
      const key = `k-${unsignedPayload ? 'u' : 's'}`;
      const body = Buffer.from(`bytes ${key}`);
      await sendS3(
        client,
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }),
        { unsignedPayload, signal: new AbortController().signal },
        (c, o) => client.send(c, o),
      );
      const got = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(body);
    }
    client.destroy();
    admin.destroy();
  });
});
