import { describe, expect, it } from 'vitest';
import { createMemoryBudget } from '../../../src/core/memory-budget.ts';

const never = new AbortController().signal;
const tick = () => new Promise((r) => setTimeout(r, 5));

describe('memory budget (bytes)', () => {
  it('grants while there is room, queues in order, and releases once', async () => {
    const budget = createMemoryBudget(100, 10);
    const a = await budget.acquire(60, never);
    const order: string[] = [];
    const b = budget.acquire(60, never).then((r) => (order.push('b'), r));
    const c = budget.acquire(30, never).then((r) => (order.push('c'), r));
    await tick();
    // c fits but waits behind b: first come, first served, so big files cannot starve.
    expect(order).toEqual([]);
    expect(budget.waiting).toBe(2);
    a.release();
    a.release();
    const rb = await b;
    const rc = await c;
    expect(order).toEqual(['b', 'c']);
    expect(budget.inUse).toBe(90);
    rb.release();
    rc.release();
    expect(budget.inUse).toBe(0);
  });

  it('counts small leases by their bytes: many fit where one part would', async () => {
    const budget = createMemoryBudget(5 * 1024 * 1024, 0);
    const leases = [];
    for (let i = 0; i < 80; i++) leases.push(await budget.acquire(64 * 1024, never));
    expect(budget.inUse).toBe(5 * 1024 * 1024);
    expect(budget.tryAcquire(1)).toBeUndefined();
    for (const l of leases) l.release();
    expect(budget.inUse).toBe(0);
  });

  it('shrink gives bytes back at once and wakes a waiter', async () => {
    const budget = createMemoryBudget(100, 5);
    const big = await budget.acquire(100, never);
    let granted = false;
    const waiter = budget.acquire(50, never).then((l) => ((granted = true), l));
    await tick();
    expect(granted).toBe(false);
    big.shrink(40);
    expect(big.bytes).toBe(40);
    const w = await waiter;
    expect(budget.inUse).toBe(90);
    // Shrinking never grows a lease.
    big.shrink(1000);
    expect(big.bytes).toBe(40);
    big.release();
    w.release();
    expect(budget.inUse).toBe(0);
  });

  it('tryAcquire never jumps the queue', async () => {
    const budget = createMemoryBudget(100, 5);
    const a = await budget.acquire(90, never);
    const waiting = budget.acquire(50, never);
    expect(budget.tryAcquire(5)).toBeUndefined();
    a.release();
    (await waiting).release();
    expect(budget.tryAcquire(5)?.bytes).toBe(5);
  });

  it('refuses with BUSY past the queue bound', async () => {
    const budget = createMemoryBudget(10, 1);
    const hold = await budget.acquire(10, never);
    const waiting = budget.acquire(10, never);
    await expect(budget.acquire(10, never)).rejects.toMatchObject({ code: 'BUSY', status: 503 });
    hold.release();
    (await waiting).release();
  });

  it('an upload under way (queued) waits past the bound instead of being refused', async () => {
    const budget = createMemoryBudget(10, 1);
    const hold = await budget.acquire(10, never);
    const first = budget.acquire(10, never);
    const underWay = budget.acquire(10, never, { queued: true });
    expect(budget.waiting).toBe(2);
    hold.release();
    (await first).release();
    (await underWay).release();
    expect(budget.inUse).toBe(0);
  });

  it('drops a waiter whose request is aborted, and lets the ones behind it in', async () => {
    const budget = createMemoryBudget(10, 5);
    const hold = await budget.acquire(6, never);
    const controller = new AbortController();
    const big = budget.acquire(10, controller.signal);
    const small = budget.acquire(4, never);
    await tick();
    expect(budget.waiting).toBe(2);
    controller.abort(new Error('client gone'));
    await expect(big).rejects.toThrow('client gone');
    (await small).release();
    expect(budget.waiting).toBe(0);
    hold.release();
    expect(budget.inUse).toBe(0);
  });

  it('lets a request larger than the whole budget run alone', async () => {
    const budget = createMemoryBudget(10, 5);
    const lease = await budget.acquire(50, never);
    expect(budget.inUse).toBe(10);
    lease.release();
  });

  it('0 means unbounded: counted, never waited for', async () => {
    const budget = createMemoryBudget(0, 0);
    const lease = await budget.acquire(1e12, never);
    expect(budget.inUse).toBe(1e12);
    expect(budget.tryAcquire(1e12)).toBeDefined();
    lease.release();
  });
});
