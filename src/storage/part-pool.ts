/**
 * The memory of the S3 part uploader: part buffers leased from the process's byte budget
 * (src/core/memory-budget.ts). A buffer is as large as its part can get: a full part for a
 * large file, the file's own size for a small one, so a 64 KiB upload holds ~64 KiB, not a
 * part. Full-size buffers are kept for reuse while nobody waits for memory (their pages stay
 * faulted in, and V8 has no 5 MiB garbage to collect per part); while someone waits their
 * bytes go back to the budget at once, and the buffer itself is handed to the next file that
 * gets a full part's lease (a few spares at most), instead of becoming garbage while the next
 * file allocates a new one.
 *
 * Slow clients cannot hold the budget: a file whose client has sent nothing for
 * `reclaimIdleMs` while others wait copies its half-filled part into a buffer of exactly the
 * bytes it has and gives the rest back (`PoolHolder.reclaim`). Parked bytes stay leased, and
 * never so many that a full part would no longer fit beside them: a file can always make
 * progress once the active parts ahead of it are sent.
 */
import type { MemoryBudget, MemoryLease } from '../core/memory-budget.ts';

/**
 * A file holding a buffer. `idleSince` is set while it waits for its client's next bytes
 * (undefined otherwise); `reclaim` makes it swap its buffer for an exact copy at once.
 */
export interface PoolHolder {
  idleSince: number | undefined;
  /** Swaps the buffer for a copy of its filled bytes (PartPool.shrink); false when there was nothing to give. */
  reclaim(): boolean;
}

export interface PartPoolOptions {
  /** Bytes of a full part (S3_PART_BYTES). */
  partBytes: number;
  /** The process's byte budget; every buffer of this pool is leased from it. */
  budget: MemoryBudget;
  /** A holder idle this long (ms) is reclaimed when another file waits for memory. Default 100. */
  reclaimIdleMs?: number;
  /** Full-size buffers kept for reuse while nobody waits. Default: as many as the budget holds. */
  maxCached?: number;
}

const KiB = 1024;

/**
 * Frees a buffer's memory now: `ArrayBuffer.prototype.transfer(0)` detaches it (every view of it
 * becomes empty). Only for buffers no pending write reads (see `release`).
 */
function free(buf: Buffer): void {
  const ab = buf.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  // A buffer of its own (allocUnsafeSlow), never a slice of a shared one.
  if (buf.byteOffset === 0 && ab.byteLength === buf.length) ab.transfer?.(0);
}

/** The buffer size a request of `bytes` gets: rounded up to its class, at most `partBytes`. */
export function bufferClass(bytes: number, partBytes: number): number {
  const step = bytes <= 256 * KiB ? 16 * KiB : bytes <= 1024 * KiB ? 64 * KiB : 256 * KiB;
  return Math.min(partBytes, Math.ceil(bytes / step) * step);
}

export class PartPool {
  readonly partBytes: number;
  readonly budget: MemoryBudget;
  readonly reclaimIdleMs: number;
  readonly #maxCached: number;
  readonly #leases = new Map<Buffer, MemoryLease>();
  readonly #cache: Array<{ buf: Buffer; lease: MemoryLease }> = [];
  /** Released buffers by size, outside the budget until a lease of their size takes one. */
  readonly #spares = new Map<number, Buffer[]>();
  #spareBytes = 0;
  readonly #holders = new Set<PoolHolder>();
  /** Buffers made by `shrink` (a parked part), and their bytes. */
  readonly #parked = new Set<Buffer>();
  #parkedBytes = 0;
  #reclaimed = 0;
  #allocated = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: PartPoolOptions) {
    const { partBytes, budget } = options;
    if (!Number.isSafeInteger(partBytes) || partBytes < 1)
      throw new RangeError(`partBytes must be a positive integer, got ${partBytes}`);
    this.partBytes = partBytes;
    this.budget = budget;
    this.reclaimIdleMs = options.reclaimIdleMs ?? 100;
    this.#maxCached = options.maxCached ?? Math.floor(Math.min(budget.totalBytes, 2 ** 40) / partBytes);
  }

  /** Buffers handed out and not yet released. */
  get inUse(): number {
    return this.#leases.size;
  }
  /** Full-size buffers kept for reuse. */
  get cached(): number {
    return this.#cache.length;
  }
  /** Buffers allocated so far (reused ones are not counted again). */
  get allocated(): number {
    return this.#allocated;
  }
  /** Holders reclaimed so far. */
  get reclaimed(): number {
    return this.#reclaimed;
  }

  /** Registers a file that may hold a buffer, so an idle one can be asked to give memory back. */
  hold(holder: PoolHolder): void {
    this.#holders.add(holder);
  }
  unhold(holder: PoolHolder): void {
    this.#holders.delete(holder);
  }

  /**
   * A buffer of at least `requested` bytes (its size class, at most `partBytes`; contents
   * undefined), once the budget has them.
   * Rejects with the signal's reason, or BUSY past the budget's queue unless `queued` (see
   * MemoryBudget.acquire).
   */
  async acquire(requested: number, signal: AbortSignal, options?: { queued?: boolean }): Promise<Buffer> {
    if (!(requested >= 1 && requested <= this.partBytes))
      throw new RangeError(`a part buffer holds 1..${this.partBytes} bytes, got ${requested}`);
    const bytes = bufferClass(requested, this.partBytes);
    if (bytes === this.partBytes) {
      const cached = this.#cache.pop();
      if (cached) return this.#lend(cached.buf, cached.lease);
    }
    let lease = this.budget.tryAcquire(bytes);
    if (!lease && this.#cache.length > 0) {
      // Idle buffers make way for a request that would otherwise wait.
      this.#evict();
      lease = this.budget.tryAcquire(bytes);
    }
    if (!lease) {
      const pending = this.budget.acquire(bytes, signal, options);
      this.#watchIdle();
      lease = await pending;
    }
    const spare = this.#spares.get(bytes)?.pop();
    if (spare) {
      this.#spareBytes -= spare.length;
      return this.#lend(spare, lease);
    }
    this.#allocated++;
    // Slow: memory of its own, never a slice of Node's shared 8 KiB pool.
    return this.#lend(Buffer.allocUnsafeSlow(bytes), lease);
  }

  /**
   * Gives a buffer back: kept for reuse when full-size and nobody waits, else to the budget.
   * `idle: true` promises that no I/O still reads it (a request that was answered, or bytes
   * never sent): a buffer that is not kept is then freed at once instead of waiting for V8's
   * next full GC (part buffers live long enough to reach the old generation).
   */
  release(buf: Buffer, options?: { idle?: boolean }): void {
    const lease = this.#leases.get(buf);
    if (!lease) return;
    this.#leases.delete(buf);
    if (this.#parked.delete(buf)) this.#parkedBytes -= buf.length;
    if (buf.length === this.partBytes && this.budget.waiting === 0 && this.#cache.length < this.#maxCached) {
      return void this.#cache.push({ buf, lease });
    }
    if (!this.#spare(buf) && options?.idle) free(buf);
    lease.release();
  }

  /** Keeps a buffer (outside the budget) for the next lease of its size, within two parts' worth. */
  #spare(buf: Buffer): boolean {
    // A parked copy (exact size) would never fit a new lease.
    if (bufferClass(buf.length, this.partBytes) !== buf.length) return false;
    if (this.#spareBytes + buf.length > 2 * this.partBytes) return false;
    const list = this.#spares.get(buf.length);
    if (list) list.push(buf);
    else this.#spares.set(buf.length, [buf]);
    this.#spareBytes += buf.length;
    return true;
  }

  /**
   * Swaps `buf` for a buffer of exactly its first `length` bytes and gives the rest of its
   * lease back at once. Undefined (nothing done) when that would not free anything, or when
   * the bytes parked would leave no room for a full part.
   */
  shrink(buf: Buffer, length: number): Buffer | undefined {
    const lease = this.#leases.get(buf);
    if (!lease || length >= buf.length || length < 1) return undefined;
    if (this.#parkedBytes + length > this.budget.totalBytes - this.partBytes) return undefined;
    const copy = Buffer.allocUnsafeSlow(length);
    buf.copy(copy, 0, 0, length);
    this.#leases.delete(buf);
    // Still being filled, never sent: nothing else reads it.
    if (!this.#spare(buf)) free(buf);
    lease.shrink(length);
    this.#parked.add(copy);
    this.#parkedBytes += length;
    return this.#lend(copy, lease);
  }

  #lend(buf: Buffer, lease: MemoryLease): Buffer {
    this.#leases.set(buf, lease);
    return buf;
  }

  #evict(): void {
    for (const { buf, lease } of this.#cache.splice(0)) {
      this.#spare(buf);
      lease.release();
    }
  }

  /** While files wait for memory, checks every `reclaimIdleMs` for holders idle at least that long. */
  #watchIdle(): void {
    if (this.#timer || this.budget.waiting === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#evict();
      const now = Date.now();
      const idle = [...this.#holders]
        .filter((h) => h.idleSince !== undefined && now - h.idleSince >= this.reclaimIdleMs)
        .sort((a, b) => a.idleSince! - b.idleSince!);
      for (const holder of idle) {
        if (this.budget.waiting === 0) break;
        if (holder.reclaim()) this.#reclaimed++;
      }
      this.#watchIdle();
    }, this.reclaimIdleMs);
    // Never keeps the process alive by itself.
    this.#timer.unref?.();
  }
}
