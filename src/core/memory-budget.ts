/**
 * One memory budget in bytes shared by every upload of a process (`UPLOAD_MEMORY_BYTES`). A
 * file holds a lease for the bytes it gathers (a part buffer, or only what a small file needs),
 * so many small uploads run side by side while the total stays bounded. When the budget is
 * spent, later requests wait first come, first served (their clients are held back by TCP);
 * past `maxWaiting` waiters a new one is refused with 503 BUSY, so waiting cannot pile up
 * without bound either.
 */
import { UploadError } from './errors.ts';

/** Bytes held from the budget until `release()` (idempotent). */
export interface MemoryLease {
  readonly bytes: number;
  /** Gives back all but `bytes` (a smaller figure) at once, e.g. when a buffer is swapped for a smaller copy. */
  shrink(bytes: number): void;
  release(): void;
}

export interface MemoryBudget {
  /** Bytes the budget holds at most (Infinity when unbounded). */
  readonly totalBytes: number;
  /**
   * Resolves once `bytes` are leased; rejects with the signal's reason, or BUSY when
   * `maxWaiting` requests wait already. `queued: true` waits past that bound: for an upload
   * already under way, which must not fail half-stored once it was let in.
   */
  acquire(bytes: number, signal: AbortSignal, options?: { queued?: boolean }): Promise<MemoryLease>;
  /** A lease at once when there is room and nobody waits; undefined otherwise. */
  tryAcquire(bytes: number): MemoryLease | undefined;
  /** Bytes leased now (tests, metrics). */
  readonly inUse: number;
  /** Requests waiting for bytes. */
  readonly waiting: number;
}

/** Seconds a refused caller is told to wait (`Retry-After`). */
export const BUSY_RETRY_AFTER_SECONDS = 2;

/** `totalBytes` of 0 (or Infinity) means unbounded: leases are counted, never waited for. */
export function createMemoryBudget(totalBytes: number, maxWaiting: number): MemoryBudget {
  const total = totalBytes > 0 ? totalBytes : Infinity;
  let inUse = 0;
  const queue: Array<{ bytes: number; grant: () => void }> = [];

  const pump = (): void => {
    while (queue.length > 0 && inUse + queue[0]!.bytes <= total) {
      const next = queue.shift()!;
      inUse += next.bytes;
      next.grant();
    }
  };

  const lease = (initial: number): MemoryLease => {
    let held = initial;
    return {
      get bytes() {
        return held;
      },
      shrink(bytes) {
        const to = Math.max(0, Math.min(held, bytes));
        inUse -= held - to;
        held = to;
        pump();
      },
      release() {
        inUse -= held;
        held = 0;
        pump();
      },
    };
  };

  // A request never needs more than the whole budget: it then runs alone.
  const clamp = (bytes: number): number => Math.max(0, Math.min(bytes, total));

  return {
    totalBytes: total,
    get inUse() {
      return inUse;
    },
    get waiting() {
      return queue.length;
    },
    tryAcquire(requested) {
      const bytes = clamp(requested);
      if (queue.length > 0 || inUse + bytes > total) return undefined;
      inUse += bytes;
      return lease(bytes);
    },
    acquire(requested, signal, options) {
      const bytes = clamp(requested);
      if (signal.aborted) return Promise.reject(abortReason(signal));
      if (queue.length === 0 && inUse + bytes <= total) {
        inUse += bytes;
        return Promise.resolve(lease(bytes));
      }
      if (queue.length >= maxWaiting && !options?.queued) {
        return Promise.reject(
          new UploadError('BUSY', `The server is at its upload memory limit; retry in ${BUSY_RETRY_AFTER_SECONDS} s`),
        );
      }
      return new Promise((resolve, reject) => {
        const entry = {
          bytes,
          grant: () => {
            signal.removeEventListener('abort', onAbort);
            resolve(lease(bytes));
          },
        };
        const onAbort = (): void => {
          const i = queue.indexOf(entry);
          if (i >= 0) queue.splice(i, 1);
          // A large waiter leaving may let smaller ones behind it in.
          pump();
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        queue.push(entry);
      });
    },
  };
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error('aborted');
}
