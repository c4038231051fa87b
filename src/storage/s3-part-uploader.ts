/**
 * The default ObjectSink on S3 (`S3_UPLOADER=pooled`), without lib-storage; measured in bench/.
 * One multipart upload per file, like src/storage/s3-sink.ts, but:
 *
 * - Part buffers come from a fixed pool shared by every file of the sink and are reused: the
 *   socket chunks are copied once, straight into a pooled buffer, which is sent as is.
 *   lib-storage instead gathers chunks and `Buffer.concat`s every part into a fresh 8 MiB
 *   allocation (a copy, page faults on new memory, and garbage for V8 to collect).
 * - Memory is bounded per process, not per file: at most `poolParts` buffers of `partBytes`
 *   exist, whatever the number of concurrent uploads; a file that finds the pool empty stops
 *   reading (TCP then holds its client back) until a part of any file has been sent.
 * - Reading goes on while earlier parts are sent (up to `queueSize` in flight per file).
 * - The payload is not hashed for the signature when the endpoint is TLS (UNSIGNED-PAYLOAD;
 *   https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html), and a
 *   part's CRC32, when the client's checksum mode asks for one, is computed natively
 *   (zlib.crc32) once per part.
 * - Every request carries an abort signal: a deadline cuts parts in flight at once (lib-storage
 *   sends without one; s3-sink.ts adds it through a Proxy of the client).
 * - No lib-storage state to work around: the abort is ours, awaited, retried, and never
 *   replaces the error that caused it.
 *
 * - Slow clients cannot hold the pool: a file whose client has sent nothing for
 *   `reclaimIdleMs` while other files wait for a buffer copies its half-filled part out to
 *   memory of its own (the bytes it has, not a whole part) and gives the buffer back; it takes
 *   a buffer again when its next bytes arrive. Without this, `poolParts` slow clients held
 *   every other upload back until their parts filled. The copies are bounded by the memory
 *   budget's admission (each file reserves a part: UPLOAD_MEMORY_BYTES).
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
import type { CoreLogger } from '../core/upload-files.ts';
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../core/sink.ts';
import { confirmStored, type StoreAnswer } from './confirm-stored.ts';
import { createS3Cleanup } from './s3-cleanup.ts';
import { storageError } from './s3-errors.ts';

/** S3's part count limit (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
const MAX_PARTS = 10_000;

/**
 * A file holding a pooled buffer. `idleSince` is set while it waits for its client's next
 * bytes (undefined otherwise); `reclaim` makes it give its buffer back at once (it keeps a
 * copy of the bytes it gathered).
 */
export interface PoolHolder {
  idleSince: number | undefined;
  /** Gives the buffer back; false when there was none to give. */
  reclaim(): boolean;
}

/**
 * Buffers of `partBytes`, created on first use up to `maxBuffers` and then reused for the life
 * of the process: the memory they hold is faulted in once and stays resident, so peak RSS is
 * the pool's size whatever the traffic. Waiters are served first come, first served.
 */
export class PartPool {
  /** Bytes of each buffer. */
  readonly partBytes: number;
  /** Most buffers that will ever exist. */
  readonly maxBuffers: number;
  /** A holder idle this long (ms) gives its buffer back when another file waits for one. */
  readonly reclaimIdleMs: number;
  #created = 0;
  #reclaimed = 0;
  readonly #free: Buffer[] = [];
  readonly #waiters: Array<{ grant: (buf: Buffer) => void }> = [];
  readonly #holders = new Set<PoolHolder>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(partBytes: number, maxBuffers: number, reclaimIdleMs = 100) {
    if (!Number.isSafeInteger(partBytes) || partBytes < 1)
      throw new RangeError(`partBytes must be a positive integer, got ${partBytes}`);
    if (!Number.isSafeInteger(maxBuffers) || maxBuffers < 1)
      throw new RangeError(`maxBuffers must be a positive integer, got ${maxBuffers}`);
    this.partBytes = partBytes;
    this.maxBuffers = maxBuffers;
    this.reclaimIdleMs = reclaimIdleMs;
  }

  /** Buffers taken back from idle holders so far. */
  get reclaimed(): number {
    return this.#reclaimed;
  }

  /** Registers a file that may hold buffers, so an idle one can be asked to give them back. */
  hold(holder: PoolHolder): void {
    this.#holders.add(holder);
  }

  unhold(holder: PoolHolder): void {
    this.#holders.delete(holder);
  }

  /** Buffers created so far (at most `maxBuffers`). */
  get created(): number {
    return this.#created;
  }

  /** Buffers handed out and not yet released. */
  get inUse(): number {
    return this.#created - this.#free.length;
  }

  get waiting(): number {
    return this.#waiters.length;
  }

  /** Resolves with a buffer (contents undefined); rejects with the signal's reason on abort. */
  acquire(signal: AbortSignal): Promise<Buffer> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    const free = this.#free.pop();
    if (free) return Promise.resolve(free);
    if (this.#created < this.maxBuffers && this.#waiters.length === 0) {
      this.#created++;
      // Slow: its own memory, never a slice of Node's shared 8 KiB pool.
      return Promise.resolve(Buffer.allocUnsafeSlow(this.partBytes));
    }
    return new Promise<Buffer>((resolve, reject) => {
      const waiter = {
        grant: (buf: Buffer) => {
          signal.removeEventListener('abort', onAbort);
          resolve(buf);
        },
      };
      const onAbort = (): void => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(abortReason(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
      this.#watchIdle();
    });
  }

  /** While files wait, checks every `reclaimIdleMs` for holders idle at least that long. */
  #watchIdle(): void {
    if (this.#timer || this.#waiters.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = Date.now();
      const idle = [...this.#holders]
        .filter((h) => h.idleSince !== undefined && now - h.idleSince >= this.reclaimIdleMs)
        .sort((a, b) => a.idleSince! - b.idleSince!);
      for (const holder of idle) {
        if (this.#waiters.length === 0) break;
        if (holder.reclaim()) this.#reclaimed++;
      }
      this.#watchIdle();
    }, this.reclaimIdleMs);
    // Never keeps the process alive by itself.
    this.#timer.unref?.();
  }

  /** Gives a buffer back: to the longest waiter, else to the free list. */
  release(buf: Buffer): void {
    const next = this.#waiters.shift();
    if (next) next.grant(buf);
    else this.#free.push(buf);
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}

export interface S3PartUploaderOptions {
  client: S3Client;
  bucket: string;
  /** Multipart part size, bytes (5 MiB..5 GiB). Also the size of each pooled buffer. */
  partBytes: number;
  /** Parts in flight per file. */
  queueSize: number;
  /**
   * Part buffers shared by all files of this sink, so memory is partBytes x poolParts for the
   * whole process whatever the concurrency. Default `queueSize + 1`: one file can keep
   * `queueSize` parts in flight while it fills the next.
   */
  poolParts?: number;
  /** A pool to share between sinks (its partBytes must equal `partBytes`); overrides poolParts. */
  pool?: PartPool;
  /** See PartPool.reclaimIdleMs. Default 100 ms (a client sending under ~0.6 MB/s). */
  reclaimIdleMs?: number;
  /**
   * Send `x-amz-content-sha256: UNSIGNED-PAYLOAD` instead of hashing every part for the
   * signature. S3 allows it; TLS then protects the payload in transit, and an explicit CRC32
   * (when the checksum mode asks for one) still checks it end to end. Default: true when the
   * endpoint is https, false on plain http.
   */
  unsignedPayload?: boolean;
  logger?: CoreLogger;
  /** Attempts for AbortMultipartUpload on top of the SDK's own retries. Default 3. */
  abortAttempts?: number;
  /** Time allowed for clean-up calls (AbortMultipartUpload with retries, DeleteObject), ms. Default 2000. */
  cleanupTimeoutMs?: number;
}

type AnyCommand = UploadPartCommand | PutObjectCommand;

/** The slice of the SDK's middleware stack used here (the commands' own types are overloads). */
interface BuildStack {
  add(
    middleware: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>,
    options: { step: 'build'; name: string; override: boolean },
  ): void;
}

/** Build-step middleware: the signer then uses this header instead of hashing the body. */
function withUnsignedPayload<C extends AnyCommand>(command: C): C {
  (command.middlewareStack as unknown as BuildStack).add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'unsignedPayloadMiddleware', override: true },
  );
  return command;
}

/** CRC32 of a part as S3 writes it: base64 of the 4 big-endian bytes. */
function crc32Base64(data: Buffer): string {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(crc32(data) >>> 0, 0);
  return out.toString('base64');
}

export function createS3PartUploader(options: S3PartUploaderOptions): ObjectSink & { readonly pool: PartPool } {
  const { client, bucket, partBytes, queueSize, logger } = options;
  const abortAttempts = options.abortAttempts ?? 3;
  const cleanupTimeoutMs = options.cleanupTimeoutMs ?? 2000;
  if (!Number.isSafeInteger(queueSize) || queueSize < 1) throw new RangeError(`queueSize must be at least 1, got ${queueSize}`);
  const pool = options.pool ?? new PartPool(partBytes, options.poolParts ?? queueSize + 1, options.reclaimIdleMs);
  if (pool.partBytes !== partBytes)
    throw new RangeError(`pool.partBytes (${pool.partBytes}) must equal partBytes (${partBytes})`);

  /** Resolved once from the client config: TLS endpoint? CRC32 wanted? */
  let settings: Promise<{ unsigned: boolean; crc: boolean }> | undefined;
  const resolveSettings = (): Promise<{ unsigned: boolean; crc: boolean }> =>
    (settings ??= (async () => {
      const endpoint = client.config.endpoint ? await client.config.endpoint() : undefined;
      const tls = endpoint ? endpoint.protocol === 'https:' : client.config.tls !== false;
      // Same rule as the SDK (and lib-storage): checksums unless the mode is WHEN_REQUIRED.
      const crc = (await client.config.requestChecksumCalculation()) === 'WHEN_SUPPORTED';
      return { unsigned: options.unsignedPayload ?? tls, crc };
    })());

  const { removeObject, undoFailedPut } = createS3Cleanup({ client, bucket, logger, abortAttempts, cleanupTimeoutMs });

  async function put(input: PutObjectInput): Promise<PutObjectOutput> {
    const { key, body, signal } = input;
    const { unsigned, crc } = await resolveSettings();
    const common = {
      Bucket: bucket,
      Key: key,
      ContentType: input.contentType,
      ContentDisposition: input.contentDisposition,
      Metadata: input.metadata,
    };
    const prepare = <C extends AnyCommand>(command: C): C => (unsigned ? withUnsignedPayload(command) : command);

    // Two ways to stop, as in s3-sink.ts: any failure stops *reading* (no new part starts,
    // parts in flight finish so their outcome is known); only a deadline also cuts the
    // requests in flight (`hardStop`), a risk taken only when there is no time to wait.
    const stop = new AbortController();
    const hardStop = new AbortController();
    let failure: unknown;
    const fail = (err: unknown): void => {
      if (failure !== undefined) return;
      failure = err ?? new Error('upload failed');
      stop.abort(failure);
      // Wakes the read loop if it waits for the client's next bytes.
      if (!body.readableEnded) body.destroy(failure instanceof Error ? failure : new Error(String(failure)));
    };
    const onAbort = (): void => {
      const reason: unknown = signal.reason;
      fail(reason instanceof Error ? reason : new Error('aborted'));
      if (reason instanceof UploadError && reason.code === 'TIMEOUT') hardStop.abort(reason);
    };

    let create: Promise<string> | undefined;
    const ensureUpload = (): Promise<string> =>
      (create ??= client
        .send(new CreateMultipartUploadCommand({ ...common, ...(crc ? { ChecksumAlgorithm: 'CRC32' as const } : {}) }), {
          abortSignal: hardStop.signal,
        })
        .then((out) => {
          if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
          return out.UploadId;
        }));

    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let partNumber = 0;

    /** Sends one full (or last) part from a pooled buffer; the buffer returns to the pool after. */
    const sendPart = (buf: Buffer, length: number): void => {
      const number = ++partNumber;
      const data = buf.subarray(0, length);
      const task = (async () => {
        try {
          const uploadId = await ensureUpload();
          if (failure !== undefined) return;
          const out = await client.send(
            prepare(
              new UploadPartCommand({
                Bucket: bucket,
                Key: key,
                UploadId: uploadId,
                PartNumber: number,
                Body: data,
                ContentLength: length,
                ...(crc ? { ChecksumCRC32: crc32Base64(data) } : {}),
              }),
            ),
            // A part is discarded by the abort anyway: cut it at once on any failure, so a
            // stalled S3 cannot keep the upload open.
            { abortSignal: stop.signal },
          );
          if (!out.ETag) throw new Error(`UploadPart ${number} returned no ETag`);
          parts[number - 1] = {
            PartNumber: number,
            ETag: out.ETag,
            ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}),
          };
        } catch (err) {
          fail(err);
        } finally {
          // The request has settled (answered, failed after the SDK's retries, or cut): the
          // socket holds no reference to the bytes any more.
          pool.release(buf);
        }
      })();
      inFlight.add(task);
      void task.finally(() => inFlight.delete(task));
    };

    /** The store's answer, with the size read back before the file is reported stored. */
    const confirmed = (answer: StoreAnswer): Promise<PutObjectOutput> =>
      confirmStored(answer, { client, bucket, key, signal: hardStop.signal, remove: removeObject, logger });

    let fill: Buffer | undefined;
    let filled = 0;
    /** The bytes of a part whose buffer was reclaimed while the client was idle. */
    let parked: Buffer | undefined;
    const holder: PoolHolder = {
      idleSince: undefined,
      reclaim: () => {
        if (!fill || holder.idleSince === undefined) return false;
        parked = Buffer.allocUnsafeSlow(filled);
        fill.copy(parked, 0, 0, filled);
        const buf = fill;
        fill = undefined;
        holder.idleSince = undefined;
        pool.release(buf);
        return true;
      },
    };
    /** Takes a buffer again for a parked part. */
    const unpark = async (): Promise<void> => {
      if (!parked) return;
      const buf = await pool.acquire(stop.signal);
      filled = parked.copy(buf);
      fill = buf;
      parked = undefined;
    };
    const chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    let bodyDone = false;
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    pool.hold(holder);
    try {
      for (;;) {
        // Idle (reclaimable) only while waiting for the client with a buffer in hand.
        holder.idleSince = fill ? Date.now() : undefined;
        const next = await chunks.next();
        holder.idleSince = undefined;
        if (next.done) {
          bodyDone = true;
          break;
        }
        await unpark();
        const chunk = next.value;
        let offset = 0;
        while (offset < chunk.length) {
          if (failure !== undefined) throw failure;
          if (fill && filled === partBytes) {
            // A full buffer goes out only once more bytes exist, so a body of exactly one
            // part is a single PutObject, and the last part is never empty. More bytes mean
            // at least one part after this one.
            if (partNumber + 2 > MAX_PARTS) {
              throw new UploadError('FILE_TOO_LARGE', `A file may have at most ${MAX_PARTS} parts of ${partBytes} bytes`);
            }
            // At most queueSize parts of this file in flight: wait for one to settle.
            while (inFlight.size >= queueSize && failure === undefined) await Promise.race(inFlight);
            if (failure !== undefined) throw failure;
            sendPart(fill, filled);
            fill = undefined;
          }
          if (!fill) {
            fill = await pool.acquire(stop.signal);
            filled = 0;
          }
          const copied = chunk.copy(fill, filled, offset, offset + Math.min(chunk.length - offset, partBytes - filled));
          filled += copied;
          offset += copied;
        }
      }
      await unpark();
      if (failure !== undefined) throw failure;

      if (partNumber === 0) {
        // Under one part (or exactly one): a single PutObject of the bytes gathered.
        const data = fill ? fill.subarray(0, filled) : Buffer.alloc(0);
        const out = await client.send(
          prepare(
            new PutObjectCommand({
              ...common,
              Body: data,
              ContentLength: filled,
              ...(crc ? { ChecksumCRC32: crc32Base64(data) } : {}),
            }),
          ),
          { abortSignal: hardStop.signal },
        );
        return await confirmed(out);
      }

      sendPart(fill!, filled);
      fill = undefined;
      while (inFlight.size > 0) await Promise.race(inFlight);
      // A failure or an abort after the last byte still means: do not complete.
      if (failure !== undefined) throw failure;
      const out = await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: await ensureUpload(),
          MultipartUpload: { Parts: parts },
        }),
        { abortSignal: hardStop.signal },
      );
      return await confirmed(out);
    } catch (err) {
      fail(err);
      // Parts in flight finish (or are cut by a deadline) before the upload is aborted, so
      // no part lands after the abort.
      while (inFlight.size > 0) await Promise.race(inFlight);
      await undoFailedPut(key, await create?.catch(() => undefined), err, hardStop.signal.aborted);
      throw storageError(err, 'store the file');
    } finally {
      signal.removeEventListener('abort', onAbort);
      pool.unhold(holder);
      if (fill) pool.release(fill);
      // As `for await` does: a loop left early lets go of the body.
      if (!bodyDone) await chunks.return?.().catch(() => {});
    }
  }

  return {
    bucket,
    pool,
    put,
    delete: (key: string, versionId?: string) => removeObject(key, versionId),
  };
}
