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
});
