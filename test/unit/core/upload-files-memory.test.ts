/**
 * What a request keeps alive while its files are still uploading: many small uploads wait on
 * S3 at once, and whatever each one holds is copied by every scavenge and, once it outlives
 * two, promoted to the old space. The parser has done its work once the body is parsed.
 */
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../../../src/core/sink.ts';
import { uploadFiles } from '../../../src/core/upload-files.ts';
import { buildMultipart, CONTENT_TYPE } from '../../helpers/multipart.ts';

// Every busboy parser the core makes, and its delimiter search (whose count the core reads), held weakly.
const parsers = vi.hoisted(() => [] as Array<WeakRef<object>>);
const searches = vi.hoisted(() => [] as Array<WeakRef<object>>);
vi.mock('busboy', async (importOriginal) => {
  const real = ((await importOriginal()) as { default: (...args: unknown[]) => object }).default;
  return {
    default: (...args: unknown[]) => {
      const parser = real(...args) as { _bparser: object };
      parsers.push(new WeakRef(parser));
      searches.push(new WeakRef(parser._bparser));
      return parser;
    },
  };
});

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Reads each body to its end, then holds the put until `release()`. */
class HeldSink implements ObjectSink {
  readonly bucket = 'held';
  readonly read: string[] = [];
  #release!: () => void;
  readonly #held = new Promise<void>((resolve) => (this.#release = resolve));

  async put(input: PutObjectInput): Promise<PutObjectOutput> {
    let bytes = 0;
    for await (const chunk of input.body) bytes += (chunk as Buffer).length;
    this.read.push(input.key);
    await this.#held;
    return { etag: '"e"', bytesRead: bytes };
  }

  async delete(): Promise<void> {}

  release(): void {
    this.#release();
  }
}

describe('a request whose files are still uploading', () => {
  it('no longer holds the parser (nor its search) once the body is parsed', async () => {
    const sink = new HeldSink();
    const body = buildMultipart([{ name: 'file', filename: 'a.bin', data: Buffer.alloc(4096, 1) }]);
    const events = uploadFiles(
      { headers: { 'content-type': CONTENT_TYPE, 'content-length': String(body.length) }, body: Readable.from([body]) },
      {
        sink,
        limits: { maxFileBytes: 1 << 20, maxFiles: 3, maxFields: 4, maxFieldBytes: 64, maxTotalBytes: 1 << 20 },
        keyPrefix: 'up/',
      },
    );
    const done = (async () => {
      const seen = [];
      for await (const e of events) seen.push(e.type);
      return seen;
    })();
    await vi.waitFor(() => expect(sink.read).toHaveLength(1));
    // A WeakRef's target stays alive until the current job ends: collect on a later turn.
    await new Promise((resolve) => setTimeout(resolve, 10));
    gc();
    expect(parsers).toHaveLength(1);
    expect(parsers[0]!.deref()).toBeUndefined();
    expect(searches[0]!.deref()).toBeUndefined();

    sink.release();
    expect(await done).toEqual(['file-started', 'file-stored', 'done']);
  });
});
