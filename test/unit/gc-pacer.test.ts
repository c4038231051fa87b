import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createGcPacer } from '../../src/gc-pacer.ts';

describe('createGcPacer', () => {
  it('is off for 0', () => {
    expect(createGcPacer(0)).toBeUndefined();
  });

  it('runs a GC each time everyBytes more have been counted', () => {
    const pacer = createGcPacer(1000)!;
    expect(pacer).toBeTypeOf('function');
    pacer(999);
    expect(pacer.runs).toBe(0);
    pacer(1);
    expect(pacer.runs).toBe(1);
    for (let i = 0; i < 16; i++) pacer(2500);
    expect(pacer.runs).toBe(17);
  });

  it('keeps dead read buffers from piling up', () => {
    // What a socket does: a fresh 64 KiB backing store per read, dead once copied onward.
    const pacer = createGcPacer(4 * 1024 * 1024)!;
    let peak = 0;
    for (let i = 0; i < 4096; i++) {
      const chunk = Buffer.allocUnsafeSlow(64 * 1024).fill(i & 0xff);
      pacer(chunk.length);
      if (i % 16 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    }
    // 256 MiB went through; with a scavenge every 4 MiB only a few MiB are ever held.
    expect(peak).toBeLessThan(24 * 1024 * 1024);
  });

  it('is one pacer per setting, shared by every app of the process', () => {
    expect(createGcPacer(3000)).toBe(createGcPacer(3000));
  });

  it("counts only the bytes since V8's last GC of its own", async () => {
    const pacer = createGcPacer(1024 * 1024)!;
    pacer(900 * 1024);
    // What many small requests do: enough short-lived JS objects for V8 to scavenge by itself.
    let keep: object[] = [];
    for (let i = 0; i < 2_000_000; i++) {
      keep.push({ i });
      if (keep.length > 1000) keep = [];
    }
    // GC entries reach their observer on a later turn of the event loop.
    for (let i = 0; i < 5; i++) await nextTurn();
    pacer(200 * 1024);
    expect(pacer.runs).toBe(0);
    // Without a GC of V8's own, the bytes add up as before.
    pacer(900 * 1024);
    expect(pacer.runs).toBe(1);
  });
});
