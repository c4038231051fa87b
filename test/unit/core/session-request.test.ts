import { describe, expect, it } from 'vitest';
import { parseComplete, parseCreate, parsePartNumbers } from '../../../src/core/session-request.ts';

const limits = { maxFields: 3, maxFieldBytes: 16 };

describe('session request bodies', () => {
  it('create: fields in the order sent, defaults filled in', () => {
    expect(parseCreate({ filename: 'a.bin', size: 9, fields: { b: '2', a: 'ü' } }, limits)).toEqual({
      filename: 'a.bin',
      size: 9,
      contentType: 'application/octet-stream',
      fields: [
        ['b', '2'],
        ['a', 'ü'],
      ],
    });
  });

  it.each([
    ['create', () => parseCreate({ filename: 'a', size: 1, feilds: { a: '1' } }, limits), '"feilds"'],
    ['parts', () => parsePartNumbers({ partNumbers: [1], extra: true }, 3), '"extra"'],
    ['complete', () => parseComplete({ parts: [{ partNumber: 1, etag: 'e' }], partz: [] }, 1), '"partz"'],
    ['a completed part', () => parseComplete({ parts: [{ partNumber: 1, etag: 'e', size: 5 }] }, 1), '"size"'],
  ])('an unknown key in %s is a 400 naming it', (_where, parse, name) => {
    expect(parse).toThrow(expect.objectContaining({ code: 'BAD_REQUEST', status: 400 }));
    expect(parse).toThrow(name);
  });

  it.each([
    [{ a: 1 }, 'BAD_REQUEST', 'must be a string'],
    [['a', 'b'], 'BAD_REQUEST', 'object of text values'],
    ['a=b', 'BAD_REQUEST', 'object of text values'],
    [{ a: '1', b: '2', c: '3', d: '4' }, 'TOO_MANY_FIELDS', 'More than 3'],
    [{ a: 'x'.repeat(17) }, 'FIELD_TOO_LARGE', 'larger than 16'],
  ])('fields %j: %s', (fields, code, message) => {
    const parse = () => parseCreate({ filename: 'a', size: 1, fields }, limits);
    expect(parse).toThrow(expect.objectContaining({ code }));
    expect(parse).toThrow(message);
  });
});
