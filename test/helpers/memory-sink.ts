/**
 * An in-memory ObjectSink for unit tests of the core. It keeps every object it completes,
 * records every put it aborted, and can be told to fail on cue.
 */
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../../src/core/sink.ts';
import { UploadError } from '../../src/core/errors.ts';

export interface StoredObject {
  data: Buffer;
  contentType: string;
  contentDisposition: string;
  metadata: Record<string, string>;
}

export interface MemorySinkOptions {
  /** Fail the put of these keys (by order of puts, 0-based) after reading their body. */
  failPutAt?: number[];
  /** Fail deletes. */
  failDelete?: boolean;
  /** Report this many bytes more than were stored (a store that kept something else). */
  misreportSizeBy?: number;
}

export class MemorySink implements ObjectSink {
  readonly bucket = 'memory';
  readonly objects = new Map<string, StoredObject>();
  readonly aborted: string[] = [];
  readonly deleted: string[] = [];
  puts = 0;
  readonly #options: MemorySinkOptions;

  constructor(options: MemorySinkOptions = {}) {
    this.#options = options;
  }

  async put(input: PutObjectInput): Promise<PutObjectOutput> {
    const n = this.puts++;
    const chunks: Buffer[] = [];
    // The port's promise: an aborted request stops the put at once, whatever the body does.
    const onAbort = (): void => {
      input.body.destroy(input.signal.reason instanceof Error ? input.signal.reason : new Error('aborted'));
    };
    input.signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const chunk of input.body) chunks.push(chunk as Buffer);
    } catch (err) {
      this.aborted.push(input.key);
      throw err instanceof UploadError ? err : new UploadError('STORAGE_FAILED', 'body failed', { cause: err });
    } finally {
      input.signal.removeEventListener('abort', onAbort);
    }
    if (input.signal.aborted) {
      this.aborted.push(input.key);
      throw new UploadError('STORAGE_FAILED', 'aborted');
    }
    if (this.#options.failPutAt?.includes(n)) {
      this.aborted.push(input.key);
      throw new UploadError('STORAGE_FAILED', 'The object store failed to store the file (503 SlowDown)');
    }
    this.objects.set(input.key, {
      data: Buffer.concat(chunks),
      contentType: input.contentType,
      contentDisposition: input.contentDisposition,
      metadata: input.metadata,
    });
    const bytesRead = chunks.reduce((sum, c) => sum + c.length, 0);
    return { etag: `"etag-${n}"`, bytesRead, storedSize: bytesRead + (this.#options.misreportSizeBy ?? 0) };
  }

  async delete(key: string): Promise<void> {
    if (this.#options.failDelete) throw new UploadError('STORAGE_FAILED', 'delete failed');
    this.deleted.push(key);
    this.objects.delete(key);
  }
}
