import { describe, expect, it } from 'vitest';
import { buildKey, sanitizeFilename } from '../../../src/core/keys.ts';
import { buildFileMetadata, contentDisposition, encodeMetadataValue, metadataKey } from '../../../src/core/metadata.ts';

describe('keys', () => {
  it.each([
    ['report.pdf', 'report.pdf'],
    ['../../etc/passwd', 'etc-passwd'],
    ['..', ''],
    ['.hidden', 'hidden'],
    ['a\u0000b\nc\u202Ed.txt', 'a-b-c-d.txt'],
    ['café.txt', 'cafe.txt'],
    ['cafe\u0301.txt', 'cafe.txt'],
    ['日本語.txt', 'txt'],
    ['x'.repeat(300), 'x'.repeat(100)],
    ['C:\\Users\\me\\file.txt', 'C-Users-me-file.txt'],
    ['a...b', 'a.b'],
  ])('sanitizeFilename(%j) = %j', (input, expected) => {
    const out = sanitizeFilename(input);
    expect(out).toBe(expected);
    expect(out).toMatch(/^[A-Za-z0-9._-]*$/);
    expect(out).not.toContain('..');
  });

  it('puts the id first and never the raw name', () => {
    expect(buildKey('uploads/', 'id-1', '../x y.txt')).toBe('uploads/id-1/x-y.txt');
    expect(buildKey('uploads/', 'id-1', '日本')).toBe('uploads/id-1');
  });
});

describe('metadata', () => {
  it('encodes values as percent-encoded UTF-8, cut on a code point', () => {
    expect(encodeMetadataValue('a b/é')).toBe('a%20b%2F%C3%A9');
    expect(encodeMetadataValue('éé', 8)).toBe('%C3%A9');
    expect(decodeURIComponent(encodeMetadataValue('😀x'.repeat(10), 30))).toBe('😀x😀x');
  });

  it('turns field names into header tokens', () => {
    expect(metadataKey('Project Name')).toBe('project-name');
    expect(metadataKey('ünï')).toBe('n');
    expect(metadataKey('---')).toBe('');
  });

  it('keeps the original name even when it is huge, and stays within 2 KB', () => {
    const { metadata } = buildFileMetadata('名'.repeat(2000), [['k', 'v']]);
    const bytes = Object.entries(metadata).reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(bytes).toBeLessThanOrEqual(2048);
    expect(metadata['k']).toBe('v');
  });

  it("puts the service's own entries first: a huge name or a field of the same name cannot push them out", () => {
    const arn = 'arn:aws:sts::111122223333:assumed-role/billing/job';
    const { metadata, omitted } = buildFileMetadata('名'.repeat(2000), [['uploaded-by', 'me']], { 'uploaded-by': arn });
    expect(decodeURIComponent(metadata['uploaded-by']!)).toBe(arn);
    expect(omitted).toEqual(['uploaded-by']);
    const bytes = Object.entries(metadata).reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(bytes).toBeLessThanOrEqual(2048);
    expect(Object.keys(metadata)).toEqual(['uploaded-by', 'original-filename']);
  });

  it('writes an RFC 6266 Content-Disposition with an ASCII fallback', () => {
    expect(contentDisposition("l'été (1).txt", 'l-ete-1-.txt')).toBe(
      `attachment; filename="l-ete-1-.txt"; filename*=UTF-8''l%27%C3%A9t%C3%A9%20%281%29.txt`,
    );
    expect(contentDisposition('"', '')).toBe(`attachment; filename="file"; filename*=UTF-8''%22`);
  });
});
