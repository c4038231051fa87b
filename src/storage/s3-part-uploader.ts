/**
 * The ObjectSink on S3: one multipart upload per file, or a single PutObject for a file of at
 * most one part, without lib-storage (figures: bench/README.md).
 *
 * - Memory comes from the process's byte budget through a PartPool (src/storage/part-pool.ts):
 *   socket chunks are copied once into a part buffer, which is sent as is; a small file's
 *   buffer is its own size.
 * - Reading goes on while earlier parts are sent (up to `queueSize` in flight per file).
 * - S3's answer confirms what it stored (echoed CRC32, or ETag = the MD5 sent), so a small
 *   file costs one request; the size is read back (HeadObject) only when it does not.
 * - Every request carries an abort signal: any failure cuts UploadParts in flight (the abort
 *   discards them anyway); only the sink input's `hardStop` (a deadline) cuts the others.
 * - The abort is ours, awaited, retried, and never replaces the error that caused it.
 */
import { crc32 } from 'node:zlib';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { UploadError } from '../core/errors.ts';
import { createMemoryBudget } from '../core/memory-budget.ts';
import type { CoreLogger } from '../core/logger.ts';
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../core/sink.ts';
import { confirmStored, type ReadBack, type SentBytes, type StoreAnswer } from './confirm-stored.ts';
import { PartPool, type PoolHolder } from './part-pool.ts';
import { createS3Cleanup, type S3Cleanup } from './s3-cleanup.ts';
import { storageError } from './s3-errors.ts';
import { S3_MAX_PARTS } from './s3-limits.ts';
import { crc32ToBase64, md5Of } from './s3-requests.ts';
import { sendS3 } from './s3-call.ts';

export interface S3PartUploaderOptions {
  client: S3Client;
  bucket: string;
  /** Multipart part size, bytes (5 MiB..5 GiB). Also the size of a full part buffer. */
  partBytes: number;
  /** Parts in flight per file. */
  queueSize: number;
  /** Where part buffers come from (shared by every file of the process). Default: a pool over an unbounded budget. */
  pool?: PartPool;
  /**
   * Send `x-amz-content-sha256: UNSIGNED-PAYLOAD` instead of hashing every part for the
   * signature (src/storage/s3-requests.ts). Default: true when the endpoint is https.
   */
  unsignedPayload?: boolean;
  /** See ReadBack. Default `auto`. */
  readBack?: ReadBack;
  logger?: CoreLogger;
  /** Attempts for AbortMultipartUpload on top of the SDK's own retries. Default 3. */
  abortAttempts?: number;
  /** Time allowed for clean-up calls (AbortMultipartUpload with retries, DeleteObject), ms. Default 2000. */
  cleanupTimeoutMs?: number;
}

/** Settings resolved once from the client config. */
interface Settings {
  /** Sign with UNSIGNED-PAYLOAD. */
  unsigned: boolean;
  /** Send a CRC32 with every body (the SDK's rule: unless the mode is WHEN_REQUIRED). */
  crc: boolean;
}

/** What every file of one sink shares. */
interface SinkContext {
  client: S3Client;
  bucket: string;
  partBytes: number;
  queueSize: number;
  pool: PartPool;
  readBack: ReadBack;
  cleanup: S3Cleanup;
  logger: CoreLogger | undefined;
  settings: Settings;
}

export function createS3PartUploader(options: S3PartUploaderOptions): ObjectSink & { readonly pool: PartPool } {
  const { client, bucket, partBytes, queueSize, logger } = options;
  if (!Number.isSafeInteger(queueSize) || queueSize < 1) throw new RangeError(`queueSize must be at least 1, got ${queueSize}`);
  const pool = options.pool ?? new PartPool({ partBytes, budget: createMemoryBudget(0, 0) });
  if (pool.partBytes !== partBytes)
    throw new RangeError(`pool.partBytes (${pool.partBytes}) must equal partBytes (${partBytes})`);
  const cleanup = createS3Cleanup({
    client,
    bucket,
    logger,
    abortAttempts: options.abortAttempts ?? 3,
    cleanupTimeoutMs: options.cleanupTimeoutMs ?? 2000,
  });

  let settings: Promise<Settings> | undefined;
  const resolveSettings = (): Promise<Settings> =>
    (settings ??= (async () => {
      const endpoint = client.config.endpoint ? await client.config.endpoint() : undefined;
      const tls = endpoint ? endpoint.protocol === 'https:' : client.config.tls !== false;
      const crc = (await client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
      return { unsigned: options.unsignedPayload ?? tls, crc };
    })());

  return {
    bucket,
    pool,
    async put(input) {
      const context: SinkContext = {
        client,
        bucket,
        partBytes,
        queueSize,
        pool,
        readBack: options.readBack ?? 'auto',
        cleanup,
        logger,
        settings: await resolveSettings(),
      };
      return new FileUpload(context, input).run();
    },
    delete: (key: string, versionId?: string) => cleanup.removeObject(key, versionId),
  };
}

/**
 * One file's upload. Reads the body into part buffers; a full buffer is sent only once more
 * bytes exist, so a body of at most one part becomes a single PutObject and the last part is
 * never empty.
 */
class FileUpload {
  readonly #ctx: SinkContext;
  readonly #input: PutObjectInput;
  readonly #common: {
    Bucket: string;
    Key: string;
    ContentType: string;
    ContentDisposition: string;
    Metadata: Record<string, string>;
  };
  /** Any failure: stops reading and cuts UploadParts in flight. */
  readonly #stop = new AbortController();
  /** A deadline: cuts every request in flight. */
  readonly #hardStop = new AbortController();
  #failure: unknown;

  /** The part being filled, and how many of its bytes are. */
  #fill: Buffer | undefined;
  #filled = 0;
  /**
   * CRC32 of `#fill`'s first `#filled` bytes when CRCs are on, kept up as each chunk is copied
   * in: the bytes are then still in the CPU's cache, where a pass over a whole 5 MiB part
   * afterwards reads it back from memory (bench/README.md, "CRC32 as the bytes arrive").
   */
  #crc = 0;
  /** Bytes of the parts sent so far. */
  #sentBytes = 0;
  #partNumber = 0;
  readonly #parts: CompletedPart[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  /** Every UploadPart answer echoed the CRC32 sent with it. */
  #partsConfirmed = true;
  #create: Promise<string> | undefined;
  /** The file has had a buffer (it was let in). */
  #started = false;
  /** The single PutObject was sent / answered. */
  #wholeSent = false;
  #wholeAnswered = false;
  readonly #holder: PoolHolder;

  constructor(ctx: SinkContext, input: PutObjectInput) {
    this.#ctx = ctx;
    this.#input = input;
    this.#common = {
      Bucket: ctx.bucket,
      Key: input.key,
      ContentType: input.contentType,
      ContentDisposition: input.contentDisposition,
      Metadata: input.metadata,
    };
    this.#holder = { idleSince: undefined, reclaim: () => this.#park() };
  }

  /** A client idle while others wait for memory keeps only the bytes it sent (PartPool.shrink). */
  #park(): boolean {
    if (!this.#fill || this.#holder.idleSince === undefined) return false;
    const copy = this.#ctx.pool.shrink(this.#fill, this.#filled);
    if (!copy) return false;
    this.#fill = copy;
    return true;
  }

  async run(): Promise<PutObjectOutput> {
    const { signal, hardStop } = this.#input;
    const onAbort = (): void => this.#fail(signal.reason);
    const onHardStop = (): void => {
      this.#fail(hardStop?.reason);
      this.#hardStop.abort(hardStop?.reason);
    };
    if (signal.aborted) onAbort();
    if (hardStop?.aborted) onHardStop();
    signal.addEventListener('abort', onAbort, { once: true });
    hardStop?.addEventListener('abort', onHardStop, { once: true });
    this.#ctx.pool.hold(this.#holder);
    try {
      await this.#readBody();
      if (this.#failure !== undefined) throw this.#failure;
      return this.#partNumber === 0 ? await this.#putWhole() : await this.#completeMultipart();
    } catch (err) {
      this.#fail(err);
      // Parts in flight finish (or are cut by a deadline) before the upload is aborted, so
      // no part lands after the abort.
      await this.#settleInFlight();
      const uploadId = await this.#create?.catch(() => undefined);
      await this.#ctx.cleanup.undoFailedPut(this.#input.key, uploadId, err, this.#hardStop.signal.aborted);
      throw storageError(err, 'store the file');
    } finally {
      signal.removeEventListener('abort', onAbort);
      hardStop?.removeEventListener('abort', onHardStop);
      this.#ctx.pool.unhold(this.#holder);
      // A PutObject cut in flight may still be writing the bytes: leave those to the GC.
      if (this.#fill) this.#ctx.pool.release(this.#fill, { idle: this.#wholeAnswered || !this.#wholeSent });
      this.#fill = undefined;
    }
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err instanceof Error ? err : new Error(err === undefined ? 'upload failed' : String(err));
    this.#stop.abort(this.#failure);
    // Wakes the read loop if it waits for the client's next bytes.
    const { body } = this.#input;
    if (!body.readableEnded) body.destroy(this.#failure as Error);
  }

  /** Copies the body into part buffers, sending each full one once more bytes arrive. */
  async #readBody(): Promise<void> {
    const chunks = (this.#input.body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    let done = false;
    try {
      for (;;) {
        // Idle (reclaimable) only while waiting for the client with a buffer in hand.
        this.#holder.idleSince = this.#fill ? Date.now() : undefined;
        const next = await chunks.next();
        this.#holder.idleSince = undefined;
        if (next.done) {
          done = true;
          return;
        }
        const chunk = next.value;
        for (let offset = 0; offset < chunk.length;) {
          if (this.#failure !== undefined) throw this.#failure;
          if (!this.#fill || this.#filled === this.#fill.length) await this.#makeRoom();
          const fill = this.#fill!;
          const copied = chunk.copy(
            fill,
            this.#filled,
            offset,
            offset + Math.min(chunk.length - offset, fill.length - this.#filled),
          );
          if (this.#ctx.settings.crc) this.#crc = crc32(fill.subarray(this.#filled, this.#filled + copied), this.#crc);
          this.#filled += copied;
          offset += copied;
        }
      }
    } finally {
      // As `for await` does: a loop left early lets go of the body.
      if (!done) await chunks.return?.().catch(() => {});
    }
  }

  /** Gives the file room for at least one more byte: the part is full, or there is none yet. */
  async #makeRoom(): Promise<void> {
    const { partBytes, pool } = this.#ctx;
    const fill = this.#fill;
    if (fill && fill.length === partBytes) {
      // A full part, and more bytes exist: it goes out, and at least one part follows it.
      if (this.#partNumber + 2 > S3_MAX_PARTS) {
        throw new UploadError('FILE_TOO_LARGE', `A file may have at most ${S3_MAX_PARTS} parts of ${partBytes} bytes`);
      }
      while (this.#inFlight.size >= this.#ctx.queueSize && this.#failure === undefined) await Promise.race(this.#inFlight);
      if (this.#failure !== undefined) throw this.#failure;
      this.#fill = undefined;
      this.#sendPart(fill, this.#filled, this.#crc);
      this.#crc = 0;
      this.#fill = await pool.acquire(this.#nextPartBytes(), this.#stop.signal, { queued: true });
      this.#filled = 0;
      return;
    }
    // No buffer yet, or one smaller than a part that is full: a file larger than its bound
    // said, or a part parked while its client was idle. Move to a larger buffer.
    // Only a file's first buffer may be refused BUSY: one under way waits its turn.
    const bigger = await pool.acquire(fill ? this.#grownPartBytes(fill.length) : this.#nextPartBytes(), this.#stop.signal, {
      queued: this.#started,
    });
    this.#started = true;
    if (fill) {
      fill.copy(bigger, 0, 0, this.#filled);
      pool.release(fill, { idle: true });
    }
    this.#fill = bigger;
  }

  /**
   * Size of the next part's buffer: a full part, or what is left of the file's bound when the
   * file is still under one part. A multipart file's last part takes a full part too: that
   * buffer is one the pool keeps for reuse, where a buffer of the remainder's size would be a
   * new allocation at the end of every large upload (the C heap keeps such odd sizes resident).
   */
  #nextPartBytes(): number {
    const { partBytes } = this.#ctx;
    if (this.#partNumber > 0) return partBytes;
    const left = (this.#input.maxBytes ?? Infinity) - this.#sentBytes;
    return left >= 1 && left < partBytes ? left : partBytes;
  }

  #grownPartBytes(current: number): number {
    const size = this.#nextPartBytes();
    return size > current ? size : this.#ctx.partBytes;
  }

  /** Sends one part; its buffer returns to the pool once the request has settled. */
  #sendPart(buf: Buffer, length: number, crcValue: number): void {
    const { client, bucket, pool, settings } = this.#ctx;
    const number = ++this.#partNumber;
    this.#sentBytes += length;
    const data = buf.subarray(0, length);
    let sent = false;
    let answered = false;
    const task = (async () => {
      try {
        const uploadId = await this.#ensureUpload();
        if (this.#failure !== undefined) return;
        const crc = settings.crc ? crc32ToBase64(crcValue) : undefined;
        sent = true;
        const out = await sendS3(
          client,
          new UploadPartCommand({
            Bucket: bucket,
            Key: this.#input.key,
            UploadId: uploadId,
            PartNumber: number,
            Body: data,
            ContentLength: length,
            ...(crc ? { ChecksumCRC32: crc } : {}),
          }),
          { signal: this.#stop.signal, unsignedPayload: settings.unsigned },
          (c, o) => client.send(c, o),
        );
        answered = true;
        if (!out.ETag) throw new Error(`UploadPart ${number} returned no ETag`);
        if (!crc || out.ChecksumCRC32 !== crc) this.#partsConfirmed = false;
        this.#parts[number - 1] = {
          PartNumber: number,
          ETag: out.ETag,
          ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}),
        };
      } catch (err) {
        this.#fail(err);
      } finally {
        // The request has settled (answered, failed after the SDK's retries, or cut). Only an
        // answered one has surely finished writing the bytes.
        pool.release(buf, { idle: answered || !sent });
      }
    })();
    this.#inFlight.add(task);
    void task.finally(() => this.#inFlight.delete(task));
  }

  #ensureUpload(): Promise<string> {
    const { client } = this.#ctx;
    return (this.#create ??= sendS3(
      client,
      new CreateMultipartUploadCommand({
        ...this.#common,
        ...(this.#ctx.settings.crc ? { ChecksumAlgorithm: 'CRC32' as const } : {}),
      }),
      { signal: this.#hardStop.signal },
      (c, o) => client.send(c, o),
    ).then((out) => {
      if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
      return out.UploadId;
    }));
  }

  /** A file of at most one part: one PutObject whose answer confirms the bytes. */
  async #putWhole(): Promise<PutObjectOutput> {
    const data = this.#fill ? this.#fill.subarray(0, this.#filled) : Buffer.alloc(0);
    // A CRC32 where the checksum mode asks for one (S3 echoes it), else Content-MD5 (the ETag
    // of a plain PutObject is the MD5 of what was stored).
    const crc = this.#ctx.settings.crc ? crc32ToBase64(this.#crc) : undefined;
    const md5 = crc ? undefined : md5Of(data);
    this.#wholeSent = true;
    const { client, settings } = this.#ctx;
    const out = await sendS3(
      client,
      new PutObjectCommand({
        ...this.#common,
        Body: data,
        ContentLength: data.length,
        ...(crc ? { ChecksumCRC32: crc } : { ContentMD5: md5!.base64 }),
      }),
      { signal: this.#hardStop.signal, unsignedPayload: settings.unsigned },
      (c, o) => client.send(c, o),
    );
    this.#wholeAnswered = true;
    return this.#confirm(out, { bytes: data.length, crc32: crc, md5Hex: md5?.hex });
  }

  async #completeMultipart(): Promise<PutObjectOutput> {
    this.#sendPart(this.#fill!, this.#filled, this.#crc);
    this.#fill = undefined;
    await this.#settleInFlight();
    // A failure or an abort after the last byte still means: do not complete.
    if (this.#failure !== undefined) throw this.#failure;
    const { client } = this.#ctx;
    const out = await sendS3(
      client,
      new CompleteMultipartUploadCommand({
        Bucket: this.#ctx.bucket,
        Key: this.#input.key,
        UploadId: await this.#ensureUpload(),
        MultipartUpload: { Parts: this.#parts },
      }),
      { signal: this.#hardStop.signal },
      (c, o) => client.send(c, o),
    );
    return this.#confirm(out, { bytes: this.#sentBytes, partsConfirmed: this.#partsConfirmed });
  }

  #confirm(answer: StoreAnswer, sent: SentBytes): Promise<PutObjectOutput> {
    const { client, bucket, readBack, cleanup, logger } = this.#ctx;
    return confirmStored(answer, sent, {
      client,
      bucket,
      key: this.#input.key,
      readBack,
      signal: this.#hardStop.signal,
      remove: (key, versionId) => cleanup.removeObject(key, versionId),
      logger,
    });
  }

  async #settleInFlight(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
  }
}
