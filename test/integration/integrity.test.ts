/**
 * Integrity and admission through the Node server into a real s3rver: the SHA-256 returned
 * per file, an expected SHA-256 sent by the caller, the content type allowlist checked against
 * magic bytes, and the shared memory budget (wait, then 503). The size read back from S3 is
 * covered in test/unit/core/upload-files.test.ts (no local S3 misreports sizes on cue).
 */
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { post } from '../helpers/http.ts';
import { buildMultipart, CONTENT_TYPE, generatedBytes, sha256, streamMultipart } from '../helpers/multipart.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(100, 1)]);

let s3: TestS3rver;
const servers: RunningServer[] = [];

async function start(env: Record<string, string> = {}): Promise<string> {
  const server = await startServer(
    loadConfig({ PORT: '0', UPLOAD_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint, S3_PART_BYTES: String(5 * MiB), ...env }),
    { s3: { credentials: S3RVER_CREDENTIALS }, logger: createLogger('silent') },
  );
  servers.push(server);
  return server.url;
}

beforeAll(async () => {
  s3 = await startS3rver();
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await s3?.close();
});

async function listKeys(): Promise<string[]> {
  const out = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

describe('checksums', () => {
  let url: string;
  beforeAll(async () => {
    url = await start();
  });

  it('hashes nothing by default: sha256 is empty without a sha256 field', async () => {
    const body = streamMultipart([{ name: 'a', filename: 'a.bin', size: 1000, seed: 1 }]);
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ files: [{ size: 1000, sha256: '' }] });
  });

  it('UPLOAD_SHA256=always returns the SHA-256 of every stored file, single PUT and multipart', async () => {
    const always = await start({ UPLOAD_SHA256: 'always' });
    const body = streamMultipart([
      { name: 'a', filename: 'a.bin', size: 1000, seed: 1 },
      { name: 'b', filename: 'b.bin', size: 6 * MiB + 3, seed: 2 },
    ]);
    const res = await post(`${always}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(res.status).toBe(201);
    expect((res.json as { files: Array<{ sha256: string }> }).files.map((f) => f.sha256)).toEqual(body.sha256);
  });

  it('accepts a file whose `sha256` field (hex or base64) matches', async () => {
    const data = Buffer.concat([...generatedBytes(6 * MiB, 3)]);
    for (const expected of [sha256(data), Buffer.from(sha256(data), 'hex').toString('base64')]) {
      const res = await post(
        `${url}/uploads`,
        buildMultipart([
          { name: 'sha256', value: expected },
          { name: 'f', filename: 'f.bin', data },
        ]),
        {
          headers: { 'content-type': CONTENT_TYPE },
        },
      );
      expect(res.status).toBe(201);
      expect(res.json).toMatchObject({ files: [{ sha256: sha256(data) }] });
    }
  });

  it.each([
    ['single PUT', 1000],
    ['multipart', 6 * MiB],
  ])('refuses a mismatch with 422 CHECKSUM_MISMATCH and stores nothing (%s)', async (_label, size) => {
    const before = await listKeys();
    const data = Buffer.concat([...generatedBytes(size, 4)]);
    const res = await post(
      `${url}/uploads`,
      buildMultipart([
        { name: 'sha256', value: sha256('something else') },
        { name: 'f', filename: 'f.bin', data },
      ]),
      { headers: { 'content-type': CONTENT_TYPE } },
    );
    expect(res.status).toBe(422);
    expect(res.json).toMatchObject({ error: { code: 'CHECKSUM_MISMATCH' } });
    expect(await listKeys()).toEqual(before);
  });

  it('applies an expected SHA-256 to the next file only', async () => {
    const res = await post(
      `${url}/uploads`,
      buildMultipart([
        { name: 'sha256', value: sha256('one') },
        { name: 'a', filename: 'a.txt', data: 'one' },
        { name: 'b', filename: 'b.txt', data: 'two' },
      ]),
      { headers: { 'content-type': CONTENT_TYPE } },
    );
    expect(res.status).toBe(201);
  });

  it('refuses a malformed `sha256` field with 400 BAD_REQUEST', async () => {
    const res = await post(
      `${url}/uploads`,
      buildMultipart([
        { name: 'sha256', value: 'xyz' },
        { name: 'f', filename: 'f', data: 'a' },
      ]),
      {
        headers: { 'content-type': CONTENT_TYPE },
      },
    );
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });
});

describe('content type allowlist (UPLOAD_ALLOWED_TYPES)', () => {
  let url: string;
  beforeAll(async () => {
    url = await start({ UPLOAD_ALLOWED_TYPES: 'image/png, application/pdf' });
  });

  it.each([
    ['a real PNG', PNG, 'image/png', 201, undefined],
    [
      'an executable declared image/png',
      Buffer.from('MZ\x90\x00' + 'x'.repeat(100), 'latin1'),
      'image/png',
      415,
      'UNSUPPORTED_FILE_TYPE',
    ],
    ['a type not on the list', Buffer.from('a,b\n'), 'text/csv', 415, 'UNSUPPORTED_FILE_TYPE'],
    ['a PNG declared as PDF', PNG, 'application/pdf', 415, 'UNSUPPORTED_FILE_TYPE'],
  ])('%s', async (_label, data, contentType, status, code) => {
    const before = await listKeys();
    const res = await post(
      `${url}/uploads`,
      buildMultipart([
        { name: 'ok', filename: 'ok.png', data: PNG, contentType: 'image/png' },
        { name: 'f', filename: 'f', data, contentType },
      ]),
      { headers: { 'content-type': CONTENT_TYPE } },
    );
    expect(res.status).toBe(status);
    if (code) {
      expect(res.json).toMatchObject({ error: { code } });
      // The first (valid) file of the request is deleted too.
      expect(await listKeys()).toEqual(before);
    }
  });
});

describe('memory budget (UPLOAD_MEMORY_BYTES)', () => {
  it('runs files within the budget, makes others wait, and refuses past the queue with 503 BUSY', async () => {
    // A budget of one 5 MiB part: a 24 MiB file holds a part buffer, the next file waits for
    // one, a third is refused (queue of 1). The two let in take turns with the budget until
    // both are stored: a file under way is never refused.
    const url = await start({ UPLOAD_MEMORY_BYTES: String(5 * MiB), UPLOAD_MEMORY_QUEUE: '1', UPLOAD_SHA256: 'always' });
    const send = (seed: number) => {
      const body = streamMultipart([{ name: 'f', filename: `${seed}.bin`, size: 24 * MiB, seed }]);
      return post(`${url}/uploads`, body.stream, {
        headers: { 'content-type': CONTENT_TYPE, 'content-length': body.length },
      }).then((res) => ({
        res,
        sha: body.sha256[0],
      }));
    };
    const results = await Promise.all([send(1), send(2), send(3)]);
    const statuses = results.map((r) => r.res.status).sort();
    expect(statuses).toEqual([201, 201, 503]);
    const busy = results.find((r) => r.res.status === 503)!.res;
    expect(busy.headers['retry-after']).toBe('2');
    expect(busy.json).toMatchObject({ error: { code: 'BUSY' } });
    for (const r of results.filter((x) => x.res.status === 201)) {
      expect((r.res.json as { files: Array<{ sha256: string }> }).files[0]!.sha256).toBe(r.sha);
    }
  });
});
