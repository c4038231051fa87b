import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { UploadError } from '../../../src/core/errors.ts';
import { checkFileType, FileChecks, parseSha256, sniffType, typeAllowed } from '../../../src/core/file-checks.ts';
import { sha256 } from '../../helpers/multipart.ts';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
const PDF = Buffer.from('%PDF-1.7\n%\xe2\xe3', 'latin1');
const EXE = Buffer.from('4d5a90000300000004000000ffff0000', 'hex');

async function run(data: Buffer[], options: ConstructorParameters<typeof FileChecks>[0]) {
  const checks = new FileChecks(options);
  const out: Buffer[] = [];
  try {
    for await (const chunk of Readable.from(data).pipe(checks)) out.push(chunk as Buffer);
    return { ok: true as const, out: Buffer.concat(out), checks };
  } catch (err) {
    return { ok: false as const, err: err as UploadError, passedOn: Buffer.concat(out).length };
  }
}

describe('file type checks', () => {
  it('sniffs common signatures', () => {
    expect(sniffType(PNG)).toBe('image/png');
    expect(sniffType(PDF)).toBe('application/pdf');
    expect(sniffType(Buffer.from('GIF89a'))).toBe('image/gif');
    expect(sniffType(Buffer.from('RIFF\0\0\0\0WEBPVP8 '))).toBe('image/webp');
    expect(sniffType(Buffer.from('hello'))).toBeUndefined();
  });

  it('matches allowlist entries exactly, by major type, or any', () => {
    expect(typeAllowed('image/png', ['image/*'])).toBe(true);
    expect(typeAllowed('image/png', ['image/jpeg'])).toBe(false);
    expect(typeAllowed('text/csv', ['*/*'])).toBe(true);
  });

  it.each([
    ['image/png', PNG, ['image/png'], undefined],
    ['image/png', EXE, ['image/png'], 'UNSUPPORTED_FILE_TYPE'],
    ['text/plain', PNG, ['text/plain', 'image/png'], 'UNSUPPORTED_FILE_TYPE'],
    ['text/csv', Buffer.from('a,b\n1,2\n'), ['text/csv'], undefined],
    ['application/pdf', PDF, ['image/*'], 'UNSUPPORTED_FILE_TYPE'],
    ['image/gif', Buffer.from('GIF8'), ['image/*'], undefined],
  ])('%s with %s bytes, allowed %j -> %s', (declared, head, allowed, code) => {
    expect(checkFileType(declared, head, allowed, 'f')?.code).toBe(code);
  });

  it('holds the head back and refuses before passing on a single byte', async () => {
    const res = await run([EXE.subarray(0, 3), EXE.subarray(3), Buffer.alloc(1000)], {
      filename: 'evil.png',
      declaredType: 'image/png',
      allowedTypes: ['image/png'],
    });
    expect(res.ok).toBe(false);
    if (!res.ok) {
      expect(res.err.code).toBe('UNSUPPORTED_FILE_TYPE');
      expect(res.passedOn).toBe(0);
    }
  });

  it('passes every byte through unchanged when the type checks out', async () => {
    const data = Buffer.concat([PNG, Buffer.alloc(5000, 7)]);
    const res = await run([data.subarray(0, 5), data.subarray(5, 17), data.subarray(17)], {
      filename: 'a.png',
      declaredType: 'image/png',
      allowedTypes: ['image/png'],
    });
    expect(res.ok && res.out.equals(data)).toBe(true);
    expect(res.ok && res.checks.sha256).toBe('');
  });

  it('computes the SHA-256 when asked, whatever the chunking', async () => {
    const data = Buffer.alloc(70_000, 3);
    const res = await run([data.subarray(0, 1), data.subarray(1, 65_537), data.subarray(65_537)], {
      filename: 'a.bin',
      declaredType: 'application/octet-stream',
      sha256: true,
    });
    expect(res.ok && res.checks.sha256).toBe(sha256(data));
  });

  it('checks a file shorter than the sniffed head at its end', async () => {
    const res = await run([Buffer.from('%PD')], {
      filename: 'x.pdf',
      declaredType: 'application/pdf',
      allowedTypes: ['application/pdf'],
    });
    expect(!res.ok && res.err.code).toBe('UNSUPPORTED_FILE_TYPE');
  });
});

describe('checksums', () => {
  const data = Buffer.from('the quick brown fox');
  it('accepts hex or base64 SHA-256 and refuses anything else', () => {
    const hex = sha256(data);
    expect(parseSha256(hex.toUpperCase())).toBe(hex);
    expect(parseSha256(Buffer.from(hex, 'hex').toString('base64'))).toBe(hex);
    expect(parseSha256('abc')).toBeUndefined();
  });

  it('errors before the end on a mismatch, and counts bytes', async () => {
    const bad = await run([data], { filename: 'f', declaredType: 'text/plain', expectedSha256: sha256('other') });
    expect(!bad.ok && bad.err.code).toBe('CHECKSUM_MISMATCH');
    const good = await run([data.subarray(0, 4), data.subarray(4)], {
      filename: 'f',
      declaredType: 'text/plain',
      expectedSha256: sha256(data),
    });
    expect(good.ok && good.checks.bytesSeen).toBe(data.length);
  });
});
