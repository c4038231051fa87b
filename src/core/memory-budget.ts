/**
 * One memory budget shared by every upload of a process (`UPLOAD_MEMORY_BYTES`). Each file
 * reserves what it may hold at worst (its part buffers) before its bytes are read; when the
 * budget is spent, later files wait, which back-pressures their clients through TCP. Past
 * `maxWaiting` waiting files a new one is refused with 503 BUSY, so memory stays fixed
 * under any concurrency and waiting cannot pile up without bound either.
 */
import { UploadError } from './errors.ts';

export interface MemoryBudget {
  /** Resolves with a release function once `bytes` are reserved; rejects BUSY or on abort. */
  acquire(bytes: number, signal: AbortSignal): Promise<() => void>;
  /** Bytes reserved now (for tests and metrics). */
  readonly inUse: number;
  readonly waiting: number;
}

/** Seconds a refused caller is told to wait (`Retry-After`). */
export const BUSY_RETRY_AFTER_SECONDS = 2;

export function createMemoryBudget(totalBytes: number, maxWaiting: number): MemoryBudget {
  let inUse = 0;
  const queue: Array<{ bytes: number; grant: () => void }> = [];

  const pump = (): void => {
    while (queue.length > 0 && inUse + queue[0]!.bytes <= totalBytes) {
      const next = queue.shift()!;
      inUse += next.bytes;
      next.grant();
    }
  };

  return {
    get inUse() {
      return inUse;
    },
    get waiting() {
      return queue.length;
    },
    acquire(requested, signal) {
      // A file never needs more than the whole budget: it then runs alone.
      const bytes = Math.min(requested, totalBytes);
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        inUse -= bytes;
        pump();
      };
      if (queue.length === 0 && inUse + bytes <= totalBytes) {
        inUse += bytes;
        return Promise.resolve(release);
      }
      if (queue.length >= maxWaiting) {
        return Promise.reject(
          new UploadError('BUSY', `The server is at its upload memory limit; retry in ${BUSY_RETRY_AFTER_SECONDS} s`),
        );
      }
      return new Promise((resolve, reject) => {
        const entry = {
          bytes,
          grant: () => {
            signal.removeEventListener('abort', onAbort);
            resolve(release);
          },
        };
        const onAbort = (): void => {
          const i = queue.indexOf(entry);
          if (i >= 0) queue.splice(i, 1);
          pump();
          reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        };
        if (signal.aborted) return onAbort();
        signal.addEventListener('abort', onAbort, { once: true });
        queue.push(entry);
      });
    },
  };
}
