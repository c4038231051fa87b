/**
 * Paces V8's young-generation garbage collection by bytes received instead of by JS
 * allocations.
 *
 * Why: every socket read (and every base64 slice of a Lambda event) is a fresh ArrayBuffer
 * that dies as soon as its bytes are copied into a part buffer. V8 frees those backing
 * stores only when it scavenges, and it schedules scavenges by JS-heap allocation, which an
 * upload barely does (~200 bytes of JS objects per 64 KiB read). On Node 24 dead read
 * buffers pile up to ~70 MiB before a GC runs, so even a node:http server that discards
 * its bodies (bench/baselines/raw-discard.mjs) peaks at ~145 MiB RSS for a 1 GiB upload; a
 * minor GC every 4 MiB received keeps them at a few MiB and the same server at ~75 MiB.
 * A scavenge of a small young generation costs ~0.05-0.3 ms: 259 of them per GiB cost no
 * measurable CPU (2.16 vs 2.24 s/GB without the pacer).
 *
 * Scavenges only. Forcing a full GC as well (tried: one every 64 or 256 MiB) keeps the old
 * generation a few MiB smaller, but a forced full GC resets V8's old-generation limit to
 * just above the live heap: V8 then ran 55 natural mark-compacts per GiB instead of 4, and
 * the server's CPU went from 2.2 to 3.5 s/GB (`node --trace-gc`, 1 GiB into the discard S3).
 *
 * `gc` comes from `--expose-gc` when the process was started with it, else it is enabled
 * at run time the way jest's leak detector does (v8.setFlagsFromString + a new context).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type GcFunction = (options?: { type?: 'minor' | 'major'; execution?: 'sync' | 'async' }) => void;

let cachedGc: GcFunction | undefined;

function exposedGc(): GcFunction | undefined {
  if (cachedGc) return cachedGc;
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return (cachedGc = global as GcFunction);
  try {
    setFlagsFromString('--expose-gc');
    const fn: unknown = runInNewContext('gc');
    if (typeof fn === 'function') cachedGc = fn as GcFunction;
  } catch {
    // No gc available: pacing is off, memory is what V8 makes of it.
  }
  return cachedGc;
}

/** Counts bytes received; runs a minor GC each time `everyBytes` more have arrived. */
export interface GcPacer {
  (bytes: number): void;
  /** Scavenges run so far. */
  readonly runs: number;
}

/**
 * Returns a pacer to call with each chunk's length, or undefined when `everyBytes` is 0
 * (pacing off) or no `gc` function can be had. One pacer per process: the garbage is shared.
 */
export function createGcPacer(everyBytes: number): GcPacer | undefined {
  if (!(everyBytes > 0)) return undefined;
  const gc = exposedGc();
  if (!gc) return undefined;
  let pending = 0;
  let runs = 0;
  const pacer = (bytes: number): void => {
    pending += bytes;
    if (pending < everyBytes) return;
    pending = 0;
    runs++;
    gc({ type: 'minor' });
  };
  Object.defineProperty(pacer, 'runs', { get: () => runs });
  return pacer as GcPacer;
}
