/**
 * Paces V8's young-generation garbage collection by bytes received instead of by JS
 * allocations.
 *
 * Why: every socket read (and every base64 slice of a Lambda event) is a fresh ArrayBuffer
 * that dies as soon as its bytes are copied into a part buffer. V8 frees those backing
 * stores only when it scavenges, and it schedules scavenges by JS-heap allocation, which an
 * upload barely does, so dead read buffers pile up and RSS grows with the upload. A minor GC
 * every few MiB received frees them at once, for no measurable CPU.
 *
 * Scavenges only: a forced full GC resets V8's old-generation limit to just above the live
 * heap, and V8 then runs many more mark-compacts. Figures for both: bench/README.md
 * ("GC pacer").
 *
 * Only bytes since V8's last GC of its own count: under many small uploads the requests'
 * objects fill the young generation every few MiB of body anyway, and a forced scavenge on top
 * only costs CPU and promotes the objects of requests still in flight.
 *
 * `gc` comes from `--expose-gc` when the process was started with it, else it is enabled
 * at run time the way jest's leak detector does (v8.setFlagsFromString + a new context).
 */
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
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

/**
 * Counts bytes received; runs a minor GC each time `everyBytes` more have arrived without a
 * GC of V8's own in between.
 */
export interface GcPacer {
  (bytes: number): void;
  /** Scavenges run so far. */
  readonly runs: number;
}

/** A GC that V8 ran by itself (not one forced through `gc()`). */
function ownGc(entry: PerformanceEntry): boolean {
  const flags = (entry as { detail?: { flags?: number } }).detail?.flags ?? 0;
  return (flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) === 0;
}

/** One pacer (and one GC observer) per setting: apps created in one process share it. */
const pacers = new Map<number, GcPacer>();

/**
 * Returns a pacer to call with each chunk's length, or undefined when `everyBytes` is 0
 * (pacing off) or no `gc` function can be had. One pacer per process: the garbage is shared.
 */
export function createGcPacer(everyBytes: number): GcPacer | undefined {
  if (!(everyBytes > 0)) return undefined;
  const gc = exposedGc();
  if (!gc) return undefined;
  const existing = pacers.get(everyBytes);
  if (existing) return existing;
  let pending = 0;
  let runs = 0;
  // Entries arrive a little after their GC; the bytes counted meanwhile are forgotten, which
  // only delays the next forced scavenge by those bytes.
  const observer = new PerformanceObserver((list) => {
    if (list.getEntries().some(ownGc)) pending = 0;
  });
  observer.observe({ entryTypes: ['gc'] });
  const pacer = (bytes: number): void => {
    pending += bytes;
    if (pending < everyBytes) return;
    pending = 0;
    runs++;
    gc({ type: 'minor' });
  };
  Object.defineProperty(pacer, 'runs', { get: () => runs });
  pacers.set(everyBytes, pacer as GcPacer);
  return pacer as GcPacer;
}
