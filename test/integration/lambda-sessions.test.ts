/**
 * The session routes through the shipped Lambda bundle under AWS's runtime interface client
 * (test/helpers/lambda.ts), with API
 * Gateway REST (1.0) and Function URL (2.0) events: the parts go to S3 directly, the function
 * only signs, verifies and completes. Against radosgw (ListParts verification) and s3rver
 * (no ListParts: the size is verified with HeadObject after completion, and a wrong object is
 * deleted).
 */
import { createHash } from 'node:crypto';
import { HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CALLER_ARN, restEvent, urlEvent } from '../../scripts/make-events.mjs';
import type { UploadResult, UploadSession } from '../../src/protocol.ts';
import { objectSha256 } from '../helpers/generated-file.ts';
import { closeFunctions, invoke, loadFunction } from '../helpers/lambda.ts';
import { buildMultipart, CONTENT_TYPE, generatedBytes } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { startS3rver } from '../helpers/s3rver.ts';
import { expectConforming } from '../helpers/openapi-conformance.ts';

const radosgw = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const PART = 5 * MiB;
const SECRET = 'lambda-session-secret-0123456789abcdef';

type Handler = Awaited<ReturnType<typeof loadFunction>>;
type MakeEvent = typeof restEvent | typeof urlEvent;

interface Store {
  name: string;
  client: S3Client;
  bucket: string;
  /** ListMultipartUploads works (radosgw); s3rver does not implement it. */
  listsUploads: boolean;
  env: Record<string, string>;
}

async function call<T>(handler: Handler, make: MakeEvent, method: string, path: string, body?: unknown) {
  const res = await invoke(
    handler,
    make({
      method,
      path,
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
    }),
  );
  expect(res.streamEndedBeforeReturn).toBe(true);
  expectConforming({ method, path }, { status: res.statusCode!, headers: res.headers, body: res.body });
  return { status: res.statusCode!, body: (res.body ? JSON.parse(res.body) : undefined) as T };
}

function fileParts(size: number, seed: number) {
  const data = Buffer.concat([...generatedBytes(size, seed)]);
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += PART) parts.push(data.subarray(off, off + PART));
  return { parts, sha256: createHash('sha256').update(data).digest('hex') };
}

async function putAll(session: UploadSession, parts: Buffer[]) {
  return Promise.all(
    parts.map(async (p, i) => {
      const res = await fetch(session.parts.find((u) => u.partNumber === i + 1)!.url, { method: 'PUT', body: p });
      expect(res.status).toBe(200);
      return { partNumber: i + 1, etag: res.headers.get('etag')! };
    }),
  );
}

const stores: Array<() => Promise<Store & { close(): Promise<void> }>> = [
  async () => {
    const s3 = await startS3rver();
    return {
      name: 's3rver',
      client: s3.client,
      bucket: s3.bucket,
      listsUploads: false,
      env: { UPLOAD_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
      close: () => s3.close(),
    };
  },
];
if (radosgw) {
  stores.push(async () => {
    const client = radosgwClient(radosgw);
    const bucket = await createTestBucket(client, uniqueBucketName('lambda-sessions'));
    return {
      name: 'radosgw',
      client,
      bucket,
      listsUploads: true,
      env: {
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: radosgw,
        AWS_ACCESS_KEY_ID: RADOSGW_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: RADOSGW_SECRET_KEY,
      },
      async close() {
        client.destroy();
      },
    };
  });
}

describe.each(stores.map((start, i) => [i === 0 ? 's3rver' : 'radosgw', start] as const))(
  'sessions through the function (%s)',
  (_name, start) => {
    let store: Store & { close(): Promise<void> };
    let handler: Handler;

    beforeAll(async () => {
      store = await start();
      handler = await loadFunction({
        ...store.env,
        S3_PART_BYTES: String(PART),
        UPLOAD_SESSION_SECRET: SECRET,
        LOG_LEVEL: 'silent',
      });
    });

    afterAll(async () => {
      await closeFunctions();
      await store?.close();
    });

    const openUploads = async () =>
      store.listsUploads
        ? ((await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket }))).Uploads ?? []).map((u) => u.Key)
        : [];

    describe.each([
      ['REST (1.0)', restEvent],
      ['Function URL (2.0)', urlEvent],
    ] as const)('%s events', (_label, make) => {
      it('create, PUT parts to S3, complete: the object is byte-exact', async () => {
        const size = 2 * PART + 777;
        const { parts, sha256 } = fileParts(size, 11);
        const created = await call<UploadSession>(handler, make, 'POST', '/uploads/sessions', {
          filename: 'big.bin',
          size,
          sha256,
        });
        expect(created.status).toBe(201);
        expect(created.body).toMatchObject({ size, partSize: PART, partCount: 3, bucket: store.bucket });
        const etags = await putAll(created.body, parts);
        const done = await call<UploadResult>(handler, make, 'POST', `/uploads/sessions/${created.body.sessionId}/complete`, {
          parts: etags,
        });
        expect(done.status).toBe(201);
        expect(done.body.files[0]).toMatchObject({ key: created.body.key, size, sha256, filename: 'big.bin' });
        expect(await objectSha256(store.client, store.bucket, created.body.key)).toEqual({ sha256, size });
        // The IAM principal that signed the session's create is recorded on the object.
        const head = await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: created.body.key }));
        expect(decodeURIComponent(head.Metadata?.['uploaded-by'] ?? '')).toBe(CALLER_ARN);
        expect(await openUploads()).toEqual([]);
      });

      it('a wrong size is refused with 422 SIZE_MISMATCH and nothing is kept', async () => {
        const size = 2 * PART + 100;
        const { parts } = fileParts(size + 50, 12); // the last part is 50 bytes too long
        const created = await call<UploadSession>(handler, make, 'POST', '/uploads/sessions', { filename: 'w.bin', size });
        const etags = await putAll(created.body, parts);
        const done = await call<{ error: { code: string } }>(
          handler,
          make,
          'POST',
          `/uploads/sessions/${created.body.sessionId}/complete`,
          { parts: etags },
        );
        expect([done.status, done.body.error.code]).toEqual([422, 'SIZE_MISMATCH']);
        await expect(
          store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: created.body.key })),
        ).rejects.toMatchObject({
          name: 'NotFound',
        });
        expect(await openUploads()).toEqual([]);
      });

      it('a forged id is 404 INVALID_SESSION; more URLs are signed on demand; DELETE answers 204', async () => {
        const created = await call<UploadSession>(handler, make, 'POST', '/uploads/sessions', {
          filename: 'd.bin',
          size: 3 * PART,
        });
        const id = created.body.sessionId;
        const forged = await call<{ error: { code: string } }>(handler, make, 'POST', `/uploads/sessions/x${id}/complete`, {
          parts: [],
        });
        expect([forged.status, forged.body.error.code]).toEqual([404, 'INVALID_SESSION']);
        const more = await call<{ parts: Array<{ partNumber: number; url: string }> }>(
          handler,
          make,
          'POST',
          `/uploads/sessions/${id}/parts`,
          {
            partNumbers: [3, 1],
          },
        );
        expect([more.status, more.body.parts.map((p) => p.partNumber)]).toEqual([200, [3, 1]]);
        expect(more.body.parts[0]!.url).toMatch(/partNumber=3/);
        const aborted = await invoke(handler, make({ method: 'DELETE', path: `/uploads/sessions/${id}` }));
        // s3rver does not implement AbortMultipartUpload (405): the service says it failed.
        expect(aborted.statusCode).toBe(store.listsUploads ? 204 : 502);
        expect(await openUploads()).toEqual([]);
      });
    });

    it('without UPLOAD_SESSION_SECRET the session routes answer 404 and POST /uploads still works', async () => {
      const bare = await loadFunction({ ...store.env, UPLOAD_SESSION_SECRET: '', LOG_LEVEL: 'silent' });
      const res = await call<{ error: { code: string; message: string } }>(bare, urlEvent, 'POST', '/uploads/sessions', {
        filename: 'a',
        size: 1,
      });
      expect([res.status, res.body.error.code]).toEqual([404, 'NOT_FOUND']);
      expect(res.body.error.message).toMatch(/UPLOAD_SESSION_SECRET/);
      const upload = await invoke(
        bare,
        urlEvent({
          headers: { 'content-type': CONTENT_TYPE },
          body: buildMultipart([{ name: 'f', filename: 'f.txt', data: 'hi' }]),
        }),
      );
      expect(upload.statusCode).toBe(201);
      await bare.close();
    });
  },
);
