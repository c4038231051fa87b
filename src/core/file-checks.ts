/**
 * What the core checks in every file's bytes as they stream: size, SHA-256 (when the caller
 * sent one to check, or when the service is set to compute it for every file), and the
 * content type against its magic bytes. Failures error the stream *before* it ends, so the
 * sink never completes the object.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { UploadError } from './errors.ts';

/** Bytes of a file's head looked at for its type (the longest signature below fits). */
const SNIFF_BYTES = 16;

interface Signature {
  type: string;
  test(head: Buffer): boolean;
}

const startsWith = (head: Buffer, bytes: number[], offset = 0) => bytes.every((b, i) => head[offset + i] === b);

/** Magic numbers of common upload types (https://mimesniff.spec.whatwg.org/#matching-an-image-type-pattern). */
const SIGNATURES: Signature[] = [
  { type: 'image/png', test: (h) => startsWith(h, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { type: 'image/jpeg', test: (h) => startsWith(h, [0xff, 0xd8, 0xff]) },
  { type: 'image/gif', test: (h) => startsWith(h, [0x47, 0x49, 0x46, 0x38]) },
  { type: 'image/webp', test: (h) => startsWith(h, [0x52, 0x49, 0x46, 0x46]) && startsWith(h, [0x57, 0x45, 0x42, 0x50], 8) },
  { type: 'application/pdf', test: (h) => startsWith(h, [0x25, 0x50, 0x44, 0x46, 0x2d]) },
  { type: 'application/zip', test: (h) => startsWith(h, [0x50, 0x4b, 0x03, 0x04]) || startsWith(h, [0x50, 0x4b, 0x05, 0x06]) },
  { type: 'application/gzip', test: (h) => startsWith(h, [0x1f, 0x8b]) },
  { type: 'video/mp4', test: (h) => startsWith(h, [0x66, 0x74, 0x79, 0x70], 4) },
];

/** The type the bytes prove, if they match a known signature. */
export function sniffType(head: Buffer): string | undefined {
  return SIGNATURES.find((s) => s.test(head))?.type;
}

/** True when `type` matches an allowlist entry: exact (`image/png`), a major type (`image/*`) or any. */
export function typeAllowed(type: string, allowed: readonly string[]): boolean {
  const [major] = type.split('/');
  return allowed.some((a) => a === type || a === '*/*' || (a.endsWith('/*') && a.slice(0, -2) === major));
}

/**
 * Checks a declared type against the allowlist and the bytes: the declared type must be
 * allowed; a type with a known signature must show it; bytes that prove another type are
 * refused (a PE file sent as image/png fails, a PNG sent as text/plain fails).
 */
export function checkFileType(
  declared: string,
  head: Buffer,
  allowed: readonly string[],
  filename: string,
): UploadError | undefined {
  const refuse = (why: string) =>
    new UploadError('UNSUPPORTED_FILE_TYPE', `File ${JSON.stringify(filename)} ${why}; allowed: ${allowed.join(', ')}`);
  if (!typeAllowed(declared, allowed)) return refuse(`has type ${declared}`);
  const sniffed = sniffType(head);
  const known = SIGNATURES.some((s) => s.type === declared);
  if (known && sniffed !== declared) return refuse(`is declared ${declared} but its content is ${sniffed ?? 'not'} that`);
  if (!known && sniffed !== undefined) return refuse(`is declared ${declared} but its content is ${sniffed}`);
  return undefined;
}

/** Expected SHA-256 as sent by a caller: 64 hex digits, or base64 of 32 bytes (as S3 writes it). */
export function parseSha256(value: string): string | undefined {
  const v = value.trim();
  if (/^[0-9a-fA-F]{64}$/.test(v)) return v.toLowerCase();
  if (/^[A-Za-z0-9+/]{43}=$/.test(v)) return Buffer.from(v, 'base64').toString('hex');
  return undefined;
}

export interface FileCheckOptions {
  filename: string;
  declaredType: string;
  /** Allowlist of content types; undefined accepts any type. */
  allowedTypes?: readonly string[];
  /** Expected SHA-256, lowercase hex (implies `sha256`). */
  expectedSha256?: string;
  /** Compute the SHA-256 of the file (CPU cost: bench/README.md). Default false. */
  sha256?: boolean;
  /** Called with the bytes seen so far, at most every `progressEvery` bytes. */
  onProgress?: (bytes: number) => void;
  progressEvery?: number;
}

/**
 * A pass-through that measures and checks a file; read `bytesSeen` and `sha256` (empty when
 * not computed) after it ended. (No `size`/`length` property: lib-storage takes those as the
 * body's total length.)
 */
export class FileChecks extends Transform {
  bytesSeen = 0;
  sha256 = '';
  readonly #hash: Hash | undefined;
  readonly #options: FileCheckOptions;
  #head: Buffer[] | undefined;
  #headBytes = 0;
  #reported = 0;

  constructor(options: FileCheckOptions) {
    super();
    this.#options = options;
    this.#hash = options.sha256 || options.expectedSha256 !== undefined ? createHash('sha256') : undefined;
    this.#head = options.allowedTypes ? [] : undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytesSeen += chunk.length;
    this.#hash?.update(chunk);
    const every = this.#options.progressEvery ?? Number.POSITIVE_INFINITY;
    if (this.bytesSeen - this.#reported >= every) {
      this.#reported = this.bytesSeen;
      this.#options.onProgress?.(this.bytesSeen);
    }
    if (this.#head) {
      // Hold the first bytes back until the type is known: nothing reaches S3 before.
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      if (this.#headBytes < SNIFF_BYTES) return done();
      return this.#releaseHead(done);
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const finish = (): void => {
      if (this.#hash) this.sha256 = this.#hash.digest('hex');
      const expected = this.#options.expectedSha256;
      if (expected !== undefined && expected !== this.sha256) {
        return done(
          new UploadError(
            'CHECKSUM_MISMATCH',
            `File ${JSON.stringify(this.#options.filename)} has SHA-256 ${this.sha256}, the request said ${expected}`,
          ),
        );
      }
      done();
    };
    if (this.#head) this.#releaseHead((err?: Error | null) => (err ? done(err) : finish()));
    else finish();
  }

  #releaseHead(done: TransformCallback): void {
    const head = Buffer.concat(this.#head!);
    this.#head = undefined;
    const { declaredType, allowedTypes, filename } = this.#options;
    const refused = checkFileType(declaredType, head.subarray(0, SNIFF_BYTES), allowedTypes!, filename);
    if (refused) return done(refused);
    done(null, head);
  }
}
