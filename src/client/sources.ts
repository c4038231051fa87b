/**
 * Where the bytes of a file to upload come from: a path on disk, bytes in memory (Buffer,
 * Uint8Array, Blob) or a Readable of a declared size. Every lane reads through one interface,
 * `open()` then positional `read()`, so the multipart body and the part uploads need not know
 * which it is.
 *
 * A stream can be read once, front to back: its reads must come in order (the part workers
 * take parts in order and the reads are serialised), and it cannot be re-read for a retry of
 * a stream-through request, a checksum or a body hash. So a stream small enough for the
 * stream-through lane is first read into memory (bounded by that lane's `streamMaxBytes`).
 */
import { open as openFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { UploadClientError } from './errors.ts';

export interface SourceReader {
  /** Reads up to `length` bytes at `position` into `into` at `offset`; resolves with the count (0 at the end). */
  read(into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

export interface ByteSource {
  kind: 'path' | 'data' | 'stream';
  size: number;
  /** Can be opened more than once (a path or bytes; a stream cannot). */
  rereadable: boolean;
  open(): Promise<SourceReader>;
  /** Throws FILE_ERROR when the source changed since it was described (a file's size or mtime). */
  checkUnchanged?(): Promise<void>;
}

export function pathSource(path: string, size: number, mtimeMs: number): ByteSource {
  return {
    kind: 'path',
    size,
    rereadable: true,
    async open() {
      const handle = await openFile(path, 'r');
      return {
        read: async (into, offset, length, position) => (await handle.read(into, offset, length, position)).bytesRead,
        close: () => handle.close(),
      };
    },
    async checkUnchanged() {
      const handle = await openFile(path, 'r');
      try {
        const after = await handle.stat();
        if (after.size !== size || after.mtimeMs !== mtimeMs) throw changed(path);
      } finally {
        await handle.close();
      }
    },
  };
}

export function dataSource(data: Uint8Array | Blob): ByteSource {
  const size = data instanceof Uint8Array ? data.byteLength : data.size;
  return {
    kind: 'data',
    size,
    rereadable: true,
    async open() {
      return {
        async read(into, offset, length, position) {
          const end = Math.min(position + length, size);
          if (end <= position) return 0;
          // A Blob may be file-backed (fs.openAsBlob): read only the slice asked for.
          const slice =
            data instanceof Uint8Array
              ? data.subarray(position, end)
              : new Uint8Array(await data.slice(position, end).arrayBuffer());
          into.set(slice, offset);
          return slice.byteLength;
        },
        close: async () => {},
      };
    },
  };
}

/** A Readable of exactly `size` bytes, read once, in order. */
export function streamSource(stream: Readable, size: number, name: string): ByteSource {
  let opened = false;
  return {
    kind: 'stream',
    size,
    rereadable: false,
    async open() {
      if (opened) throw new UploadClientError('FILE_ERROR', `The stream of ${name} can be read only once`);
      opened = true;
      const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
      let pending: Buffer = Buffer.alloc(0);
      let consumed = 0;
      let ended = false;
      let queue = Promise.resolve();
      const readInOrder = async (into: Uint8Array, offset: number, length: number, position: number) => {
        if (position !== consumed) {
          throw new UploadClientError('FILE_ERROR', `The stream of ${name} was asked for byte ${position} after ${consumed}`);
        }
        let got = 0;
        while (got < length) {
          if (pending.length === 0) {
            if (ended) break;
            const next = await iterator.next();
            if (next.done) {
              ended = true;
              break;
            }
            pending = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
          }
          const n = Math.min(length - got, pending.length);
          into.set(pending.subarray(0, n), offset + got);
          pending = pending.subarray(n);
          got += n;
        }
        consumed += got;
        if (got < length && consumed < size) {
          throw new UploadClientError('FILE_ERROR', `The stream of ${name} ended after ${consumed} of ${size} bytes`);
        }
        return got;
      };
      return {
        read(into, offset, length, position) {
          const run = queue.then(() => readInOrder(into, offset, length, position));
          queue = run.then(
            () => {},
            () => {},
          );
          return run;
        },
        async close() {
          await iterator.return?.();
        },
      };
    },
  };
}

/** Reads a stream source whole into memory (callers bound it by size first). */
export async function bufferSource(source: ByteSource): Promise<ByteSource> {
  if (source.rereadable) return source;
  const data = Buffer.allocUnsafe(source.size);
  const reader = await source.open();
  try {
    await readFully(reader, data, 0, 'the stream');
  } finally {
    await reader.close();
  }
  return dataSource(data);
}

export function changed(what: string): UploadClientError {
  return new UploadClientError('FILE_ERROR', `${what} changed while it was being uploaded`);
}

/** Fills `into` from `position`; a source that ends early changed under us. */
export async function readFully(reader: SourceReader, into: Uint8Array, position: number, what: string): Promise<void> {
  let got = 0;
  while (got < into.length) {
    let bytesRead: number;
    try {
      bytesRead = await reader.read(into, got, into.length - got, position + got);
    } catch (err) {
      if (err instanceof UploadClientError) throw err;
      throw new UploadClientError('FILE_ERROR', `Reading ${what} failed: ${String(err)}`, { cause: err });
    }
    if (bytesRead === 0) throw changed(what);
    got += bytesRead;
  }
}
