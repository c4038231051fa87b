import { describe, expect, it } from 'vitest';
import { createMemoryBudget } from '../../../src/core/memory-budget.ts';
import { bufferClass, PartPool, type PoolHolder } from '../../../src/storage/part-pool.ts';

const never = new AbortController().signal;
const KiB = 1024;
const PART = 1024 * KiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pool(totalBytes: number, reclaimIdleMs = 20) {
  const budget = createMemoryBudget(totalBytes, 100);
  return { budget, pool: new PartPool({ partBytes: PART, budget, reclaimIdleMs }) };
}

describe('part pool', () => {
  it('a small buffer holds its own size, not a part', async () => {
    const { budget, pool: p } = pool(10 * PART);
    const small = await p.acquire(64 * KiB + 200, never);
    expect(small.length).toBe(80 * KiB);
    expect(budget.inUse).toBe(80 * KiB);
    p.release(small);
    // The budget has its bytes back at once; the buffer is kept (outside it) for the next file of its size.
    expect(budget.inUse).toBe(0);
    expect(p.inUse).toBe(0);
    const again = await p.acquire(70 * KiB, never);
    expect(again).toBe(small);
    expect(p.allocated).toBe(1);
    p.release(again);
  });

  it('rounds sizes to classes: 16 KiB steps to 256 KiB, 64 KiB to 1 MiB, 256 KiB above, at most a part', () => {
    const part = 5 * 1024 * KiB;
    expect([1, 16 * KiB, 16 * KiB + 1, 300 * KiB, 1024 * KiB, 1024 * KiB + 1, part - 1].map((b) => bufferClass(b, part))).toEqual(
      [16 * KiB, 16 * KiB, 32 * KiB, 320 * KiB, 1024 * KiB, 1280 * KiB, part],
    );
  });

  it('keeps full-size buffers for reuse while nobody waits', async () => {
    const { budget, pool: p } = pool(10 * PART);
    const a = await p.acquire(PART, never);
    p.release(a);
    expect(p.cached).toBe(1);
    expect(budget.inUse).toBe(PART);
    const b = await p.acquire(PART, never);
    expect(b).toBe(a);
    expect(p.allocated).toBe(1);
    p.release(b);
  });

  it('evicts kept buffers when a request would otherwise wait', async () => {
    const { budget, pool: p } = pool(2 * PART);
    const a = await p.acquire(PART, never);
    const b = await p.acquire(PART, never);
    p.release(a);
    p.release(b);
    expect(p.cached).toBe(2);
    // 512 KiB do not fit beside two kept parts: those go back to the budget.
    const odd = await p.acquire(512 * KiB, never);
    expect(p.cached).toBe(0);
    expect(budget.inUse).toBe(odd.length);
    p.release(odd);
  });

  it('hands a released buffer to a waiter through the budget, first come first served', async () => {
    const { budget, pool: p } = pool(2 * PART);
    const a = await p.acquire(PART, never);
    const b = await p.acquire(PART, never);
    const order: number[] = [];
    const w1 = p.acquire(PART, never).then((x) => (order.push(1), x));
    const w2 = p.acquire(16 * KiB, never).then((x) => (order.push(2), x));
    await sleep(5);
    expect(budget.waiting).toBe(2);
    p.release(a);
    const x1 = await w1;
    expect(order).toEqual([1]);
    p.release(b);
    const x2 = await w2;
    expect(order).toEqual([1, 2]);
    // Released while nobody waited any more: kept.
    p.release(x1);
    p.release(x2);
    expect(p.inUse).toBe(0);
    expect(budget.inUse).toBe(p.cached * PART);
  });

  it('refuses sizes outside 1..partBytes', async () => {
    const { pool: p } = pool(10 * PART);
    await expect(p.acquire(0, never)).rejects.toThrow(RangeError);
    await expect(p.acquire(PART + 1, never)).rejects.toThrow(RangeError);
  });

  it('rejects a waiter with the signal reason and BUSY past the queue', async () => {
    const budget = createMemoryBudget(PART, 1);
    const p = new PartPool({ partBytes: PART, budget });
    const a = await p.acquire(PART, never);
    const c = new AbortController();
    const waiting = p.acquire(PART, c.signal);
    await expect(p.acquire(PART, never)).rejects.toMatchObject({ code: 'BUSY' });
    c.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    p.release(a);
  });

  it('shrink swaps a buffer for an exact copy and frees the rest; never past room for one part', async () => {
    const { budget, pool: p } = pool(3 * PART);
    const a = await p.acquire(PART, never);
    a.write('hello');
    const parked = p.shrink(a, 5)!;
    expect(parked.toString()).toBe('hello');
    expect(budget.inUse).toBe(5);
    // Nothing to free: refused.
    expect(p.shrink(parked, 5)).toBeUndefined();
    const b = await p.acquire(PART, never);
    // Parked bytes that leave room for a full part beside them (3 parts - 1): allowed.
    const c = await p.acquire(PART, never);
    const parkedB = p.shrink(b, PART - 1)!;
    const parkedC = p.shrink(c, PART - 4)!;
    expect(parkedB.length + parkedC.length + 5).toBe(2 * PART);
    const d = await p.acquire(PART, never);
    // One more byte parked and a full part would no longer fit.
    expect(p.shrink(d, 1)).toBeUndefined();
    for (const x of [parked, parkedB, parkedC, d]) p.release(x);
    expect(budget.inUse).toBe(p.cached * PART);
  });

  it('reclaims holders idle while someone waits, oldest first, and only those', async () => {
    const { budget, pool: p } = pool(2 * PART, 20);
    const bufs = [await p.acquire(PART, never), await p.acquire(PART, never)];
    const holders = bufs.map((buf, i) => {
      const h: PoolHolder & { buf: Buffer } = {
        buf,
        idleSince: i === 0 ? Date.now() - 1000 : undefined,
        reclaim() {
          const copy = p.shrink(h.buf, 100 * KiB);
          if (!copy) return false;
          h.buf = copy;
          return true;
        },
      };
      p.hold(h);
      return h;
    });
    const waiter = p.acquire(PART / 2, never);
    const got = await waiter;
    expect(p.reclaimed).toBe(1);
    // The busy holder kept its buffer.
    expect(holders[1]!.buf).toBe(bufs[1]);
    expect(holders[0]!.buf.length).toBe(100 * KiB);
    expect(budget.inUse).toBe(100 * KiB + PART + PART / 2);
    for (const h of holders) {
      p.unhold(h);
      p.release(h.buf);
    }
    p.release(got);
  });

  it('does not reclaim while nobody waits', async () => {
    const { pool: p } = pool(2 * PART, 10);
    const buf = await p.acquire(PART, never);
    let asked = 0;
    p.hold({ idleSince: Date.now() - 1000, reclaim: () => (asked++, false) });
    await sleep(40);
    expect(asked).toBe(0);
    p.release(buf);
  });
});
