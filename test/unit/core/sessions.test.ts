import { describe, expect, it } from 'vitest';
import { UploadError } from '../../../src/core/errors.ts';
import type { ListedPart, SessionStore } from '../../../src/core/session-store.ts';
import { signSessionToken, verifySessionToken, type SessionClaims } from '../../../src/core/session-token.ts';
import { checkListedParts, choosePartSize, createSessionService, expectedPartSize } from '../../../src/core/sessions.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SECRET = 'unit-test-secret-0123456789abcdef';
const claims: SessionClaims = {
  v: 1,
  bucket: 'b',
  key: 'uploads/k/x.bin',
  uploadId: 'up-1',
  size: 12 * MiB,
  partSize: 5 * MiB,
  contentType: 'application/octet-stream',
  filename: 'x.bin',
  exp: 2_000_000_000,
};

describe('session tokens', () => {
  it('round-trips and reports expiry', () => {
    const id = signSessionToken(claims, SECRET);
    expect(verifySessionToken(id, SECRET, 'b', 1_900_000_000)).toEqual({ claims, expired: false });
    expect(verifySessionToken(id, SECRET, 'b', 2_000_000_000)).toEqual({ claims, expired: true });
  });

  const id = signSessionToken(claims, SECRET);
  const [payload, sig] = id.split('.') as [string, string];
  const reencode = (patch: Partial<SessionClaims>) =>
    `${Buffer.from(JSON.stringify({ ...claims, ...patch })).toString('base64url')}.${sig}`;
  it.each([
    ['a bigger size', reencode({ size: 5 * GiB })],
    ['another key', reencode({ key: 'uploads/other' })],
    ['another upload', reencode({ uploadId: 'up-2' })],
    ['a later expiry', reencode({ exp: 2_100_000_000 })],
    ['another secret', signSessionToken(claims, 'another-secret-0123456789abcdef0')],
    ['a flipped signature bit', `${payload}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`],
    ['a short signature', `${payload}.${sig.slice(0, 20)}`],
    ['no signature', payload],
    ['garbage', '../../etc/passwd'],
    ['too long', `${'A'.repeat(9000)}.${sig}`],
  ])('refuses %s with INVALID_SESSION', (_label, forged) => {
    expect(() => verifySessionToken(forged, SECRET, 'b', 0)).toThrow(
      expect.objectContaining({ code: 'INVALID_SESSION', status: 404 }),
    );
  });

  it('refuses an id issued for another bucket', () => {
    expect(() => verifySessionToken(id, SECRET, 'other-bucket', 0)).toThrow(/another bucket/);
  });
});

describe('choosePartSize', () => {
  it.each([
    [1, 8 * MiB, 8 * MiB, 1],
    [8 * MiB, 8 * MiB, 8 * MiB, 1],
    [8 * MiB + 1, 8 * MiB, 8 * MiB, 2],
    [300 * MiB, 8 * MiB, 8 * MiB, 38],
    [100 * GiB, 8 * MiB, 11 * MiB, 9310], // 80,000 MiB would not fit 10,000 parts of 8 MiB
    [5 * GiB, 5 * MiB, 5 * MiB, 1024],
    [10_000 * 5 * GiB, 5 * MiB, 5 * GiB, 10_000],
  ])('%d bytes with S3_PART_BYTES %d: parts of %d, %d of them', (size, min, partSize, count) => {
    const out = choosePartSize(size, min);
    expect(out).toEqual({ partSize, partCount: count });
    expect(out.partCount).toBeLessThanOrEqual(10_000);
  });

  it('refuses what 10,000 parts of 5 GiB cannot hold', () => {
    expect(() => choosePartSize(10_000 * 5 * GiB + 1, 5 * MiB)).toThrow(expect.objectContaining({ code: 'FILE_TOO_LARGE' }));
  });

  it('expected part sizes add up to the size', () => {
    const { partSize, partCount } = choosePartSize(12 * MiB + 7, 5 * MiB);
    const sizes = Array.from({ length: partCount }, (_, i) => expectedPartSize(i + 1, 12 * MiB + 7, partSize));
    expect(sizes).toEqual([5 * MiB, 5 * MiB, 2 * MiB + 7]);
  });
});

describe('checkListedParts', () => {
  const good: ListedPart[] = [
    { partNumber: 1, size: 5 * MiB, etag: '"aa"' },
    { partNumber: 2, size: 5 * MiB, etag: '"bb"' },
    { partNumber: 3, size: 2 * MiB, etag: '"cc"' },
  ];
  const reported = [
    { partNumber: 1, etag: 'AA' },
    { partNumber: 2, etag: '"bb"' },
    { partNumber: 3, etag: 'cc' },
  ];
  it('accepts parts that match (ETag quotes and case aside)', () => {
    expect(checkListedParts(good, claims, reported)).toBeUndefined();
  });
  it.each([
    ['a missing part', good.slice(0, 2), 'PART_MISMATCH', /Part 3 was never uploaded/],
    ['an extra part', [...good, { partNumber: 4, size: 1, etag: '"dd"' }], 'PART_MISMATCH', /holds 4 parts/],
    ['a bigger total', [good[0]!, good[1]!, { ...good[2]!, size: 2 * MiB + 1 }], 'SIZE_MISMATCH', /hold 12582913 bytes/],
    [
      'sizes that add up but are cut wrong',
      [{ ...good[0]!, size: 5 * MiB - 1 }, good[1]!, { ...good[2]!, size: 2 * MiB + 1 }],
      'PART_MISMATCH',
      /Part 1 has/,
    ],
    ['another ETag', [good[0]!, { ...good[1]!, etag: '"zz"' }, good[2]!], 'PART_MISMATCH', /Part 2: the ETag/],
  ])('refuses %s', (_label, listed, code, message) => {
    const err = checkListedParts(listed, claims, reported);
    expect(err).toBeInstanceOf(UploadError);
    expect(err!.code).toBe(code);
    expect(err!.message).toMatch(message);
  });
});

describe('session service (in-memory store)', () => {
  /** `listed`: what ListParts answers (undefined: not implemented; an error: it fails). */
  function memoryStore(listed: ListedPart[] | undefined | UploadError, headSize: number) {
    const calls: string[] = [];
    const metadata: Array<Record<string, string>> = [];
    const store: SessionStore = {
      bucket: 'b',
      async createMultipart(input) {
        calls.push('create');
        metadata.push(input.metadata);
        return 'up-1';
      },
      async presignPart(_k, _u, n) {
        return `https://s3.example/part/${n}`;
      },
      async listParts() {
        calls.push('list');
        if (listed instanceof UploadError) throw listed;
        return listed;
      },
      async complete() {
        calls.push('complete');
        return { etag: '"x-3"' };
      },
      async head() {
        calls.push('head');
        return { size: headSize, etag: '"x-3"' };
      },
      async readStart() {
        return Buffer.alloc(0);
      },
      async abort() {
        calls.push('abort');
      },
      async delete() {
        calls.push('delete');
      },
    };
    const service = createSessionService({
      store,
      secret: SECRET,
      ttlSeconds: 600,
      batchParts: 2,
      minPartBytes: 5 * MiB,
      maxFileBytes: GiB,
      keyPrefix: 'uploads/',
      now: () => 1_800_000_000_000,
      newId: () => 'id-1',
    });
    return { service, calls, metadata };
  }
  const body = (value: unknown) => async () => value;
  const parts = [1, 2, 3].map((n) => ({ partNumber: n, etag: `"e${n}"` }));

  it('creates: key from the id, first batch of URLs, expiry from the clock', async () => {
    const { service } = memoryStore([], 0);
    const s = await service.create(body({ filename: 'My File.bin', size: 12 * MiB }));
    expect(s).toMatchObject({
      key: 'uploads/id-1/My-File.bin',
      partSize: 5 * MiB,
      partCount: 3,
      parts: [
        { partNumber: 1, url: 'https://s3.example/part/1' },
        { partNumber: 2, url: 'https://s3.example/part/2' },
      ],
      expiresAt: new Date(1_800_000_600_000).toISOString(),
    });
  });

  it('stores caller fields as metadata, after sha256, and names those that do not fit', async () => {
    const { service, metadata } = memoryStore([], 0);
    const sha = 'ab'.repeat(32);
    const s = await service.create(
      body({
        filename: 'a',
        size: 1,
        sha256: sha,
        fields: { 'Customer ID': 'c-1', Note: 'é', sha256: 'x', big: 'y'.repeat(2000) },
      }),
    );
    expect(metadata[0]).toEqual({ 'original-filename': 'a', sha256: sha, 'customer-id': 'c-1', note: '%C3%A9' });
    expect(s.metadataOmitted).toEqual(['sha256', 'big']);
  });

  it("records the caller as uploaded-by, keeps its keys under its prefix, and does not let another caller's id in", async () => {
    const { service, metadata, calls } = memoryStore([], 0);
    const billing = { uploadedBy: 'arn:aws:sts::1:assumed-role/billing/s', keyPrefix: '1-billing/' };
    const s = await service.create(body({ filename: 'a', size: 1 }), billing);
    expect(s.key).toBe('uploads/1-billing/id-1/a');
    expect(metadata[0]).toMatchObject({ 'uploaded-by': encodeURIComponent(billing.uploadedBy) });
    const reports = { uploadedBy: 'token:reports', keyPrefix: 'reports/' };
    await expect(service.signParts(s.sessionId, body({ partNumbers: [1] }), reports)).rejects.toMatchObject({
      code: 'INVALID_SESSION',
    });
    await expect(service.abort(s.sessionId, reports)).rejects.toMatchObject({ code: 'INVALID_SESSION' });
    expect(calls).toEqual(['create']);
    await service.abort(s.sessionId, billing);
    expect(calls).toEqual(['create', 'abort']);
  });

  it('store without ListParts: completes, then a wrong size found by HeadObject deletes the object', async () => {
    const { service, calls } = memoryStore(undefined, 12 * MiB + 1);
    const s = await service.create(body({ filename: 'a', size: 12 * MiB }));
    await expect(service.complete(s.sessionId, body({ parts }))).rejects.toMatchObject({ code: 'SIZE_MISMATCH', status: 422 });
    expect(calls).toEqual(['create', 'list', 'complete', 'head', 'delete', 'abort']);
  });

  it('a body that cannot be read is a refusal too: the upload is aborted', async () => {
    const { service, calls } = memoryStore([], 0);
    const s = await service.create(body({ filename: 'a', size: 12 * MiB }));
    const unreadable = async () => {
      throw new UploadError('BAD_REQUEST', 'The body must be JSON');
    };
    await expect(service.complete(s.sessionId, unreadable)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
    expect(calls).toEqual(['create', 'abort']);
  });

  it('a failure of the store (5xx) does not abort: complete may be retried', async () => {
    const { service, calls } = memoryStore(new UploadError('STORAGE_FAILED', 'The object store failed (503 SlowDown)'), 0);
    const s = await service.create(body({ filename: 'a', size: 12 * MiB }));
    await expect(service.complete(s.sessionId, body({ parts }))).rejects.toMatchObject({ code: 'STORAGE_FAILED' });
    expect(calls).toEqual(['create', 'list']);
  });
});
