import { describe, expect, it } from 'vitest';
import { boundaryOf, DelimiterCounter } from '../../../src/core/multipart.ts';
import { BOUNDARY, buildMultipart, chunked } from '../../helpers/multipart.ts';

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
