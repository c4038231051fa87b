/**
 * The client's streamed multipart body is parsed by the service's own pipeline (busboy): file
 * names (ASCII, UTF-8, quotes), content types and bytes come out as they went in, and the
 * announced Content-Length is exact.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipartBody, dispositionParams } from '../../../src/client/multipart-body.ts';
import { pathSource } from '../../../src/client/sources.ts';
import { createProgressBar, formatBytes, formatDuration } from '../../../src/client/progress-bar.ts';
import { uploadFiles } from '../../../src/core/upload-files.ts';
import type { UploadEvent } from '../../../src/protocol.ts';
import { MemorySink } from '../../helpers/memory-sink.ts';
import { generatedBytes, sha256 } from '../../helpers/multipart.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mp-body-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('multipartBody', () => {
  it('is parsed back by the service into the same files', async () => {
    const specs = [
      { name: 'plain.txt', size: 0, contentType: 'text/plain' },
      { name: 'Résumé "final".pdf', size: 70_000, contentType: 'application/pdf' },
      { name: '日本語.bin', size: 200_001, contentType: 'application/octet-stream' },
    ];
    const files = await Promise.all(
      specs.map(async (s, i) => {
        const data = Buffer.concat([...generatedBytes(s.size, i + 1)]);
        const path = join(dir, `f${i}`);
        await writeFile(path, data);
        // The second file declares its SHA-256: a `sha256` field goes just before it.
        return { ...s, source: pathSource(path, s.size, 0), field: 'file', data, ...(i === 1 ? { sha256: sha256(data) } : {}) };
      }),
    );
    const body = multipartBody(files);
    let counted = 0;
    const chunks: Buffer[] = [];
    for await (const c of body.stream((_i, n) => (counted += n)) as unknown as AsyncIterable<Uint8Array>)
      chunks.push(Buffer.from(c));
    const raw = Buffer.concat(chunks);
    expect(raw.length).toBe(body.length);
    expect(counted).toBe(270_001);

    const sink = new MemorySink();
    const events: UploadEvent[] = [];
    const limits = { maxFileBytes: 1e6, maxFiles: 10, maxFields: 10, maxFieldBytes: 100, maxTotalBytes: 1e7 };
    for await (const e of uploadFiles(
      { headers: { 'content-type': body.contentType }, body: Readable.from([raw]) },
      { sink, limits, keyPrefix: 'k/' },
    )) {
      events.push(e);
    }
    const done = events.at(-1)!;
    expect(done.type).toBe('done');
    if (done.type !== 'done') return;
    // Quotes cannot survive in the ASCII fallback; the exact name travels in filename*.
    expect(done.files.map((f) => [f.filename, f.contentType, f.size])).toEqual(specs.map((s) => [s.name, s.contentType, s.size]));
    done.files.forEach((f, i) => expect(sha256(sink.objects.get(f.key)!.data)).toBe(sha256(files[i]!.data)));
    // The service checked the declared one (and hashed nothing else, its default).
    expect(done.files.map((f) => f.sha256)).toEqual(['', sha256(files[1]!.data), '']);
  });

  it('renders names: plain ASCII alone, anything else with an RFC 5987 twin', () => {
    expect(dispositionParams('a.txt')).toBe('filename="a.txt"');
    expect(dispositionParams('é "x".txt')).toBe(`filename="e _x_.txt"; filename*=UTF-8''%C3%A9%20%22x%22.txt`);
  });
});

describe('progress bar', () => {
  it('shows percent, bytes, rate and ETA', () => {
    let out = '';
    let t = 0;
    const bar = createProgressBar(
      (s) => (out = s),
      100,
      () => t,
    );
    bar.update(0, 100 * 1024 * 1024);
    t = 1000;
    bar.update(10 * 1024 * 1024, 100 * 1024 * 1024);
    expect(out).toMatch(/^\r 10% \[#+\.+\] 10\.0 MiB \/ 100\.0 MiB {2}10\.0 MiB\/s {2}ETA 9s/);
  });
  it.each([
    [0, '0 B'],
    [1536, '1.5 KiB'],
    [5 * 1024 ** 3, '5.0 GiB'],
  ])('formatBytes(%d) = %s', (n, text) => expect(formatBytes(n)).toBe(text));
  it.each([
    [NaN, '--'],
    [59.4, '59s'],
    [61, '1m01s'],
    [3 * 3600 + 120, '3h02m'],
  ])('formatDuration(%d) = %s', (s, text) => expect(formatDuration(s)).toBe(text));
});
