/**
 * The core against an in-memory sink. Each case is a raw body and the full event log it must
 * produce, replayed whole, byte by byte and in random chunks (busboy's own test style):
 * a parser bug that depends on where a chunk ends shows up here.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UploadError } from '../../../src/core/errors.ts';
import { uploadFiles, type UploadLimits } from '../../../src/core/upload-files.ts';
import type { UploadEvent } from '../../../src/protocol.ts';
import { BOUNDARY, buildMultipart, chunked, CONTENT_TYPE, sha256, type Part } from '../../helpers/multipart.ts';
import { MemorySink, type MemorySinkOptions } from '../../helpers/memory-sink.ts';

const LIMITS: UploadLimits = { maxFileBytes: 1024, maxFiles: 3, maxFields: 4, maxFieldBytes: 64, maxTotalBytes: 64 * 1024 };

interface RunOptions {
  headers?: Record<string, string>;
  limits?: Partial<UploadLimits>;
  sink?: MemorySinkOptions;
  mode?: Parameters<typeof chunked>[1];
  signal?: AbortSignal;
  progressEveryBytes?: number;
  /** Compute every file's SHA-256 (UPLOAD_SHA256=always). The table runs with it on. */
  sha256?: boolean;
  /** Called with each body chunk's length (the GC pacer's hook). */
  onBodyBytes?: (bytes: number) => void;
}

async function run(body: Buffer, options: RunOptions = {}) {
  const sink = new MemorySink(options.sink);
  let n = 0;
  const events: UploadEvent[] = [];
  for await (const event of uploadFiles(
    {
      headers: options.headers ?? { 'content-type': CONTENT_TYPE },
      body: Readable.from(chunked(body, options.mode ?? 'whole')),
      signal: options.signal,
    },
    {
      sink,
      limits: { ...LIMITS, ...options.limits },
      keyPrefix: 'up/',
      newId: () => `id${++n}`,
      progressEveryBytes: options.progressEveryBytes ?? Number.POSITIVE_INFINITY,
      sha256: options.sha256 ?? true,
      ...(options.onBodyBytes ? { onBodyBytes: options.onBodyBytes } : {}),
    },
  )) {
    events.push(event);
  }
  return { events, sink };
}

const MODES = [
  ['whole', 'whole'],
  ['byte by byte', 'bytes'],
  ['random chunks', { seed: 7, max: 13 }],
  ['random chunks 2', { seed: 99, max: 200 }],
] as const;

const started = (field: string, filename: string, key: string, contentType = 'application/octet-stream') =>
  ({ type: 'file-started', field, filename, key, contentType }) as const;
const storedFile = (
  field: string,
  filename: string,
  key: string,
  data: string,
  etag: string,
  contentType = 'application/octet-stream',
) => ({
  field,
  filename,
  key,
  size: Buffer.byteLength(data),
  contentType,
  etag,
  bucket: 'memory',
  sha256: sha256(data),
});

interface Case {
  name: string;
  parts?: Part[];
  raw?: Buffer;
  options?: RunOptions;
  /** The full event log; for failures `file-stored` events are left out (they race the failure). */
  events: unknown[];
  /** Objects left in the sink at the end, key -> content. */
  objects: Record<string, string>;
}

const CASES: Case[] = [
  {
    name: 'one file with fields before and after it',
    parts: [
      { name: 'title', value: 'Quarterly report' },
      { name: 'doc', filename: 'report.pdf', data: 'PDF-bytes', contentType: 'application/pdf' },
      { name: 'after', value: 'late field' },
    ],
    events: [
      started('doc', 'report.pdf', 'up/id1/report.pdf', 'application/pdf'),
      {
        type: 'file-stored',
        ...storedFile('doc', 'report.pdf', 'up/id1/report.pdf', 'PDF-bytes', '"etag-0"', 'application/pdf'),
      },
      {
        type: 'done',
        files: [storedFile('doc', 'report.pdf', 'up/id1/report.pdf', 'PDF-bytes', '"etag-0"', 'application/pdf')],
        fields: { title: 'Quarterly report', after: 'late field' },
      },
    ],
    objects: { 'up/id1/report.pdf': 'PDF-bytes' },
  },
  {
    name: 'two files, an RFC 5987 UTF-8 name and an empty file, repeated field',
    parts: [
      { name: 'tag', value: 'a' },
      { name: 'tag', value: 'b' },
      { name: 'f1', filename: 'ignored.txt', filenameStar: "UTF-8''%C3%A9t%C3%A9%20%E2%82%AC.txt", data: 'summer' },
      { name: 'f2', filename: 'empty.bin', data: '' },
    ],
    events: [
      started('f1', 'été €.txt', 'up/id1/ete-.txt'),
      // The repeated field name is echoed in `fields` but only its first value fits a metadata key.
      {
        type: 'file-stored',
        ...storedFile('f1', 'été €.txt', 'up/id1/ete-.txt', 'summer', '"etag-0"'),
        metadataOmitted: ['tag'],
      },
      started('f2', 'empty.bin', 'up/id2/empty.bin'),
      { type: 'file-stored', ...storedFile('f2', 'empty.bin', 'up/id2/empty.bin', '', '"etag-1"'), metadataOmitted: ['tag'] },
      {
        type: 'done',
        files: [
          { ...storedFile('f1', 'été €.txt', 'up/id1/ete-.txt', 'summer', '"etag-0"'), metadataOmitted: ['tag'] },
          { ...storedFile('f2', 'empty.bin', 'up/id2/empty.bin', '', '"etag-1"'), metadataOmitted: ['tag'] },
        ],
        fields: { tag: ['a', 'b'] },
      },
    ],
    objects: { 'up/id1/ete-.txt': 'summer', 'up/id2/empty.bin': '' },
  },
  {
    name: 'path traversal in the file name never reaches the key',
    parts: [{ name: 'f', filename: '../../etc/passwd', data: 'x' }],
    events: [
      started('f', 'passwd', 'up/id1/passwd'),
      { type: 'file-stored', ...storedFile('f', 'passwd', 'up/id1/passwd', 'x', '"etag-0"') },
      { type: 'done', files: [storedFile('f', 'passwd', 'up/id1/passwd', 'x', '"etag-0"')], fields: {} },
    ],
    objects: { 'up/id1/passwd': 'x' },
  },
  {
    name: 'a file of exactly the size limit is stored',
    parts: [{ name: 'f', filename: 'max.bin', data: 'm'.repeat(1024) }],
    events: [
      started('f', 'max.bin', 'up/id1/max.bin'),
      { type: 'file-stored', ...storedFile('f', 'max.bin', 'up/id1/max.bin', 'm'.repeat(1024), '"etag-0"') },
      { type: 'done', files: [storedFile('f', 'max.bin', 'up/id1/max.bin', 'm'.repeat(1024), '"etag-0"')], fields: {} },
    ],
    objects: { 'up/id1/max.bin': 'm'.repeat(1024) },
  },
  {
    name: 'fields only: NO_FILES',
    parts: [{ name: 'a', value: '1' }],
    events: [{ type: 'error', code: 'NO_FILES' }],
    objects: {},
  },
  {
    name: 'a file one byte over the limit: FILE_TOO_LARGE, nothing stored',
    parts: [{ name: 'f', filename: 'big.bin', data: 'b'.repeat(1025) }],
    events: [started('f', 'big.bin', 'up/id1/big.bin'), { type: 'error', code: 'FILE_TOO_LARGE' }],
    objects: {},
  },
  {
    name: 'second file too large: the first one is deleted',
    parts: [
      { name: 'f', filename: 'ok.bin', data: 'ok' },
      { name: 'g', filename: 'big.bin', data: 'b'.repeat(2000) },
    ],
    events: [
      started('f', 'ok.bin', 'up/id1/ok.bin'),
      started('g', 'big.bin', 'up/id2/big.bin'),
      { type: 'error', code: 'FILE_TOO_LARGE' },
    ],
    objects: {},
  },
  {
    name: 'too many files',
    parts: [1, 2, 3, 4].map((i) => ({ name: `f${i}`, filename: `${i}.txt`, data: `${i}` })),
    events: [
      started('f1', '1.txt', 'up/id1/1.txt'),
      started('f2', '2.txt', 'up/id2/2.txt'),
      started('f3', '3.txt', 'up/id3/3.txt'),
      { type: 'error', code: 'TOO_MANY_FILES' },
    ],
    objects: {},
  },
  {
    name: 'too many fields',
    parts: [...[1, 2, 3, 4, 5].map((i) => ({ name: `k${i}`, value: 'v' })), { name: 'f', filename: 'a.txt', data: 'a' }],
    events: [{ type: 'error', code: 'TOO_MANY_FIELDS' }],
    objects: {},
  },
  {
    name: 'field value over the limit',
    parts: [
      { name: 'long', value: 'x'.repeat(65) },
      { name: 'f', filename: 'a.txt', data: 'a' },
    ],
    events: [{ type: 'error', code: 'FIELD_TOO_LARGE' }],
    objects: {},
  },
  {
    name: 'body over the total limit',
    parts: [{ name: 'f', filename: 'a.bin', data: 'a'.repeat(900) }],
    options: { limits: { maxTotalBytes: 500 } },
    events: [started('f', 'a.bin', 'up/id1/a.bin'), { type: 'error', code: 'PAYLOAD_TOO_LARGE' }],
    objects: {},
  },
  {
    name: 'truncated body (no closing boundary) is malformed, the open file is not stored',
    raw: buildMultipart([{ name: 'f', filename: 'a.txt', data: 'abcdef' }]).subarray(0, -(BOUNDARY.length + 10)),
    events: [started('f', 'a.txt', 'up/id1/a.txt'), { type: 'error', code: 'MALFORMED_MULTIPART' }],
    objects: {},
  },
  {
    name: 'garbage part header',
    raw: Buffer.from(`--${BOUNDARY}\r\nno colon here\r\n\r\nvalue\r\n--${BOUNDARY}--\r\n`),
    events: [{ type: 'error', code: 'MALFORMED_MULTIPART' }],
    objects: {},
  },
  {
    name: 'file part without a name',
    raw: Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; filename="a.txt"\r\n\r\nabc\r\n--${BOUNDARY}--\r\n`),
    events: [{ type: 'error', code: 'MALFORMED_MULTIPART' }],
    objects: {},
  },
  {
    // busboy drops such parts silently; the delimiter count turns the loss into an error.
    name: 'a part with an unreadable filename* is refused, not dropped',
    raw: Buffer.concat([
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="x"; filename*=UTF-8''%ZZ.txt\r\n\r\nlost\r\n`),
      buildMultipart([{ name: 'f', filename: 'kept.txt', data: 'kept' }]),
    ]),
    events: [started('f', 'kept.txt', 'up/id1/kept.txt'), { type: 'error', code: 'MALFORMED_MULTIPART' }],
    objects: {},
  },
  {
    name: 'a part without Content-Disposition is refused, not dropped',
    raw: Buffer.concat([
      Buffer.from(`--${BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nlost\r\n`),
      buildMultipart([{ name: 'f', filename: 'k.txt', data: 'k' }]),
    ]),
    events: [started('f', 'k.txt', 'up/id1/k.txt'), { type: 'error', code: 'MALFORMED_MULTIPART' }],
    objects: {},
  },
  {
    name: 'preamble and epilogue are ignored',
    raw: Buffer.concat([
      Buffer.from('This is a preamble.\r\n'),
      buildMultipart([{ name: 'f', filename: 'p.txt', data: 'pp' }]),
      Buffer.from('epilogue garbage'),
    ]),
    events: [
      started('f', 'p.txt', 'up/id1/p.txt'),
      { type: 'file-stored', ...storedFile('f', 'p.txt', 'up/id1/p.txt', 'pp', '"etag-0"') },
      { type: 'done', files: [storedFile('f', 'p.txt', 'up/id1/p.txt', 'pp', '"etag-0"')], fields: {} },
    ],
    objects: { 'up/id1/p.txt': 'pp' },
  },
  {
    name: 'storage fails on the second file: STORAGE_FAILED, the first is deleted',
    parts: [
      { name: 'f', filename: 'a.txt', data: 'a' },
      { name: 'g', filename: 'b.txt', data: 'b' },
    ],
    options: { sink: { failPutAt: [1] } },
    events: [
      started('f', 'a.txt', 'up/id1/a.txt'),
      started('g', 'b.txt', 'up/id2/b.txt'),
      { type: 'error', code: 'STORAGE_FAILED' },
    ],
    objects: {},
  },
];

/**
 * Files of one request upload concurrently, so events of different files may interleave
 * depending on chunking; the log is compared per file (grouped by key, in order of first
 * appearance, each file's own events in their order), then the terminal event. Failure logs
 * leave out file-stored (it races the failure) and compare errors by code.
 */
function normalize(events: UploadEvent[]): unknown[] {
  const failed = events.at(-1)?.type === 'error';
  const byKey = new Map<string, unknown[]>();
  const terminal: unknown[] = [];
  for (const e of events) {
    if (e.type === 'done') terminal.push(e);
    else if (e.type === 'error') terminal.push({ type: 'error', code: e.code });
    else if (!(failed && e.type === 'file-stored')) {
      const list = byKey.get(e.key) ?? [];
      list.push(e);
      byKey.set(e.key, list);
    }
  }
  return [...[...byKey.values()].flat(), ...terminal];
}

describe('uploadFiles', () => {
  describe.each(MODES)('body delivered %s', (_label, mode) => {
    it.each(CASES.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const body = c.raw ?? buildMultipart(c.parts!);
      const { events, sink } = await run(body, { ...c.options, mode });
      expect(normalize(events)).toEqual(c.events);
      const objects = Object.fromEntries([...sink.objects].map(([k, v]) => [k, v.data.toString('utf8')]));
      expect(objects).toEqual(c.objects);
      // Exactly one terminal event, and it is the last one.
      expect(events.filter((e) => e.type === 'done' || e.type === 'error')).toHaveLength(1);
    });
  });

  it('rejects a body that is not multipart with UNSUPPORTED_MEDIA_TYPE and reads nothing', async () => {
    for (const contentType of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      'multipart/mixed; boundary=x',
    ]) {
      const { events, sink } = await run(Buffer.from('a=1'), { headers: { 'Content-Type': contentType } });
      expect(events).toEqual([{ type: 'error', code: 'UNSUPPORTED_MEDIA_TYPE', message: expect.any(String) }]);
      expect(sink.puts).toBe(0);
    }
    const { events } = await run(Buffer.from('a=1'), { headers: {} });
    expect(events[0]).toMatchObject({ type: 'error', code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('says in the error which stored files it deleted', async () => {
    const body = buildMultipart([
      { name: 'f', filename: 'a.txt', data: 'a' },
      { name: 'g', filename: 'b.txt', data: 'b' },
    ]);
    const { events, sink } = await run(body, { sink: { failPutAt: [1] }, mode: 'bytes' });
    const error = events.at(-1);
    expect(error).toMatchObject({ type: 'error', code: 'STORAGE_FAILED', deleted: ['up/id1/a.txt'] });
    expect(error).toHaveProperty('message', expect.stringContaining('1 file this request had stored was deleted'));
    expect(sink.deleted).toEqual(['up/id1/a.txt']);
  });

  it('refuses a file the store reports with another size, and deletes it', async () => {
    const body = buildMultipart([{ name: 'f', filename: 'a.txt', data: 'abc' }]);
    const { events, sink } = await run(body, { sink: { misreportSizeBy: 4 } });
    expect(events.at(-1)).toMatchObject({
      type: 'error',
      code: 'STORAGE_FAILED',
      message: expect.stringContaining('holds 7 bytes for "a.txt", 3 were sent'),
      deleted: ['up/id1/a.txt'],
    });
    expect(events.some((e) => e.type === 'file-stored')).toBe(false);
    expect(sink.objects.size).toBe(0);
  });

  it('names the files it could not delete', async () => {
    const body = buildMultipart([
      { name: 'f', filename: 'a.txt', data: 'a' },
      { name: 'g', filename: 'b.txt', data: 'b' },
    ]);
    const { events, sink } = await run(body, { sink: { failPutAt: [1], failDelete: true }, mode: 'bytes' });
    expect(events.at(-1)).toMatchObject({ type: 'error', code: 'STORAGE_FAILED', notDeleted: ['up/id1/a.txt'] });
    expect(sink.objects.has('up/id1/a.txt')).toBe(true);
  });

  it('keeps the original name and preceding fields as encoded metadata and Content-Disposition', async () => {
    const body = buildMultipart([
      { name: 'Project Name', value: 'Zürich ✓' },
      { name: 'f', filename: 'x', filenameStar: "UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf", data: 'x' },
      { name: 'later', value: 'not in metadata' },
    ]);
    const { sink } = await run(body);
    const [obj] = [...sink.objects.values()];
    expect(obj!.metadata).toEqual({
      'original-filename': 'na%C3%AFve%20r%C3%A9sum%C3%A9.pdf',
      'project-name': 'Z%C3%BCrich%20%E2%9C%93',
    });
    expect(decodeURIComponent(obj!.metadata['original-filename']!)).toBe('naïve résumé.pdf');
    expect(obj!.contentDisposition).toBe(
      `attachment; filename="naive-resume.pdf"; filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf`,
    );
  });

  it('leaves fields out of metadata past the 2 KB budget and reports them', async () => {
    const body = buildMultipart([
      { name: 'a', value: 'x'.repeat(60) },
      ...Array.from({ length: 40 }, (_, i) => ({ name: `k${i}`, value: 'y'.repeat(60) })),
      { name: 'f', filename: 'f.txt', data: 'f' },
    ]);
    const { events, sink } = await run(body, { limits: { maxFields: 100 } });
    const stored = events.find((e) => e.type === 'file-stored');
    const [obj] = [...sink.objects.values()];
    const used = Object.entries(obj!.metadata).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
    expect(used).toBeLessThanOrEqual(2048);
    expect(stored).toHaveProperty('metadataOmitted');
    expect((stored as { metadataOmitted: string[] }).metadataOmitted.length).toBeGreaterThan(0);
    expect(Object.keys(obj!.metadata).length + (stored as { metadataOmitted: string[] }).metadataOmitted.length).toBe(42);
  });

  it('reports progress at the configured interval, ending with the stored size', async () => {
    const body = buildMultipart([{ name: 'f', filename: 'p.bin', data: 'p'.repeat(1000) }]);
    const { events } = await run(body, { mode: { seed: 3, max: 50 }, progressEveryBytes: 100 });
    const progress = events.filter((e) => e.type === 'file-progress');
    expect(progress.length).toBeGreaterThan(0);
    const bytes = progress.map((e) => (e as { bytes: number }).bytes);
    expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    expect(Math.max(...bytes)).toBeLessThanOrEqual(1000);
    expect(events.at(-1)).toMatchObject({ type: 'done', files: [{ size: 1000 }] });
  });

  it('an aborted signal fails the request with its reason and stores nothing', async () => {
    const controller = new AbortController();
    const sink = new MemorySink();
    async function* slowBody() {
      yield buildMultipart([{ name: 'f', filename: 'a.txt', data: 'abc' }]).subarray(0, 150);
      controller.abort(new UploadError('TIMEOUT', 'deadline'));
      await new Promise((r) => setTimeout(r, 20));
      yield Buffer.from('never parsed');
    }
    const events: UploadEvent[] = [];
    for await (const e of uploadFiles(
      { headers: { 'content-type': CONTENT_TYPE }, body: Readable.from(slowBody()), signal: controller.signal },
      { sink, limits: LIMITS, keyPrefix: '' },
    )) {
      events.push(e);
    }
    expect(events.at(-1)).toMatchObject({ type: 'error', code: 'TIMEOUT' });
    expect(sink.objects.size).toBe(0);
  });

  it('a consumer that stops reading aborts the uploads and waits for them', async () => {
    const sink = new MemorySink();
    const body = new Readable({ read() {} });
    body.push(buildMultipart([{ name: 'f', filename: 'a.txt', data: 'abc' }]).subarray(0, 150));
    const it = uploadFiles({ headers: { 'content-type': CONTENT_TYPE }, body }, { sink, limits: LIMITS, keyPrefix: '' });
    const first = await it.next();
    expect(first.value).toMatchObject({ type: 'file-started' });
    await it.return(undefined);
    expect(sink.aborted).toHaveLength(1);
    expect(sink.objects.size).toBe(0);
  });

  describe('SHA-256 (default: only when the request sends one to check)', () => {
    const a = 'first file';
    const b = 'second file, other bytes';

    it('hashes nothing without a sha256 field: sha256 is empty', async () => {
      const { events } = await run(buildMultipart([{ name: 'f', filename: 'a.txt', data: a }]), { sha256: false });
      expect(events.at(-1)).toMatchObject({ type: 'done', files: [{ size: a.length, sha256: '' }] });
    });

    it("checks and returns each file its own sha256 field, and stores it as that file's metadata", async () => {
      const body = buildMultipart([
        { name: 'sha256', value: sha256(a) },
        { name: 'f', filename: 'a.txt', data: a },
        { name: 'sha256', value: sha256(b) },
        { name: 'f', filename: 'b.txt', data: b },
        { name: 'f', filename: 'c.txt', data: 'no field before me' },
      ]);
      const { events, sink } = await run(body, { sha256: false });
      const done = events.at(-1);
      expect(done).toMatchObject({ type: 'done' });
      const files = (done as { files: Array<{ key: string; sha256: string }> }).files;
      expect(files.map((f) => f.sha256)).toEqual([sha256(a), sha256(b), '']);
      expect(files.map((f) => sink.objects.get(f.key)!.metadata?.['sha256'])).toEqual([sha256(a), sha256(b), undefined]);
    });

    it('a file that differs from its sha256 field fails the request with CHECKSUM_MISMATCH and keeps nothing', async () => {
      const body = buildMultipart([
        { name: 'sha256', value: sha256(a) },
        { name: 'f', filename: 'a.txt', data: a },
        { name: 'sha256', value: sha256(a) },
        { name: 'f', filename: 'b.txt', data: b },
      ]);
      const { events, sink } = await run(body, { sha256: false });
      expect(events.at(-1)).toMatchObject({ type: 'error', code: 'CHECKSUM_MISMATCH' });
      expect(sink.objects.size).toBe(0);
    });
  });

  it('reports every body byte to onBodyBytes (the GC pacer)', async () => {
    const body = buildMultipart([{ name: 'f', filename: 'a.txt', data: 'x'.repeat(1000) }]);
    let seen = 0;
    const { events } = await run(body, { mode: 'bytes', onBodyBytes: (n) => (seen += n) });
    expect(events.at(-1)).toMatchObject({ type: 'done' });
    expect(seen).toBe(body.length);
  });
});
