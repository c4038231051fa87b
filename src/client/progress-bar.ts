/** A one-line progress bar for a terminal: percent, bytes, rate over the last seconds, ETA. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export interface ProgressBar {
  update(bytes: number, total: number, label?: string): void;
  /** Clears the line (before other output, and at the end). */
  clear(): void;
}

/** Rate window, ms: long enough to smooth part-sized steps, short enough to follow changes. */
const WINDOW_MS = 3000;
const REDRAW_MS = 100;

export function createProgressBar(write: (text: string) => void, columns = 80, now: () => number = Date.now): ProgressBar {
  const samples: Array<[number, number]> = [];
  let lastDraw = 0;
  let drawn = false;
  return {
    update(bytes, total, label = '') {
      const t = now();
      samples.push([t, bytes]);
      while (samples.length > 2 && samples[0]![0] < t - WINDOW_MS) samples.shift();
      if (t - lastDraw < REDRAW_MS && bytes < total) return;
      lastDraw = t;
      const [t0, b0] = samples[0]!;
      const rate = t > t0 ? ((bytes - b0) * 1000) / (t - t0) : 0;
      const pct = total > 0 ? Math.min(100, Math.floor((bytes * 100) / total)) : 100;
      const eta = rate > 0 ? (total - bytes) / rate : NaN;
      const text = ` ${formatBytes(bytes)} / ${formatBytes(total)}  ${formatBytes(Math.max(0, rate))}/s  ETA ${formatDuration(eta)}${label ? `  ${label}` : ''}`;
      const width = Math.max(10, Math.min(40, columns - text.length - 8));
      const filled = Math.round((pct / 100) * width);
      const bar = `${String(pct).padStart(3)}% [${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
      write(`\r${(bar + text).slice(0, Math.max(20, columns - 1))}\x1b[K`);
      drawn = true;
    },
    clear() {
      if (drawn) write('\r\x1b[K');
      drawn = false;
    },
  };
}
