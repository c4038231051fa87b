import { describe, expect, it, vi } from 'vitest';
import type { UploadError } from '../../../src/core/errors.ts';
import { boundaryOf, DelimiterCounter, discard, parseMultipart } from '../../../src/core/multipart.ts';
import { BOUNDARY, buildMultipart, chunked, CONTENT_TYPE } from '../../helpers/multipart.ts';

describe('boundaryOf', () => {
  it.each([
    ['multipart/form-data; boundary=abc', 'abc'],
    ['multipart/form-data; charset=utf-8; BOUNDARY="a b;c"', 'a b;c'],
    ['multipart/form-data', undefined],
  ])('%s', (header, boundary) => expect(boundaryOf(header)).toBe(boundary));
});

describe('DelimiterCounter', () => {
  const body = buildMultipart([
    { name: 'a', value: '1' },
    { name: 'f', filename: 'f.bin', data: Buffer.alloc(3000, 0x2d) },
    { name: 'b', value: `--${BOUNDARY.slice(0, -1)}` },
  ]);

  it.each([
    ['whole', 'whole'],
    ['byte by byte', 'bytes'],
    ['random chunks', { seed: 5, max: 40 }],
  ] as const)('counts 3 parts + the closing delimiter, fed %s', (_label, mode) => {
    const counter = new DelimiterCounter(BOUNDARY);
    for (const chunk of chunked(body, mode)) counter.feed(chunk);
    expect(counter.count).toBe(4);
  });

  it('sees a body that opens with the delimiter (no preamble) like busboy does', () => {
    const counter = new DelimiterCounter('x');
    counter.feed(Buffer.from('--x\r\n'));
    counter.feed(Buffer.from('\r\n--x--'));
    expect(counter.count).toBe(2);
  });
});

describe("parseMultipart counts delimiters with busboy's own search", () => {
  const limits = { maxFileBytes: 1 << 20, maxFiles: 5, maxFields: 5, maxFieldBytes: 100 };
  // A part busboy drops without a word (no Content-Disposition), between two it reports.
  const body = Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nlost\r\n`),
    buildMultipart([
      { name: 'a', value: '1' },
      { name: 'f', filename: 'f.bin', data: Buffer.alloc(5000, 7) },
    ]),
  ]);

  async function parse(raw: Buffer, mode: Parameters<typeof chunked>[1]): Promise<string[]> {
    const failures: string[] = [];
    const { parser, count, finished } = parseMultipart({ 'content-type': CONTENT_TYPE }, limits, {
      field: () => {},
      file: (part) => discard(part.stream),
      fail: (err: UploadError) => void failures.push(err.code),
      failed: () => failures.length > 0,
    });
    for (const chunk of chunked(raw, mode)) {
      count(chunk);
      parser.write(chunk);
    }
    parser.end();
    await finished;
    return failures;
  }

  it.each([
    ['whole', 'whole'],
    ['byte by byte', 'bytes'],
    ['random chunks', { seed: 9, max: 50 }],
  ] as const)('reports the dropped part without a second scan of the body, fed %s', async (_label, mode) => {
    const feed = vi.spyOn(DelimiterCounter.prototype, 'feed');
    try {
      expect(await parse(body, mode)).toEqual(['MALFORMED_MULTIPART']);
      expect(await parse(buildMultipart([{ name: 'f', filename: 'f.bin', data: 'x' }]), mode)).toEqual([]);
      // busboy 1.6 exposes its search's match count; another busboy falls back to the counter.
      expect(feed).not.toHaveBeenCalled();
    } finally {
      feed.mockRestore();
    }
  });
});
