import { describe, expect, it } from 'vitest';
import { createMemoryBudget } from '../../../src/core/memory-budget.ts';

const never = new AbortController().signal;

describe('memory budget', () => {
  it('grants while there is room, queues in order, and releases once', async () => {
    const budget = createMemoryBudget(100, 10);
    const a = await budget.acquire(60, never);
    const order: string[] = [];
    const b = budget.acquire(60, never).then((r) => (order.push('b'), r));
    const c = budget.acquire(30, never).then((r) => (order.push('c'), r));
    await new Promise((r) => setTimeout(r, 5));
    // c fits but waits behind b: first come, first served, so big files cannot starve.
    expect(order).toEqual([]);
    expect(budget.waiting).toBe(2);
    a();
    a();
    const rb = await b;
    const rc = await c;
    expect(order).toEqual(['b', 'c']);
    expect(budget.inUse).toBe(90);
    rb();
    rc();
    expect(budget.inUse).toBe(0);
  });

  it('refuses with BUSY past the queue bound', async () => {
    const budget = createMemoryBudget(10, 1);
    const hold = await budget.acquire(10, never);
    const waiting = budget.acquire(10, never);
    await expect(budget.acquire(10, never)).rejects.toMatchObject({ code: 'BUSY', status: 503 });
    hold();
    (await waiting)();
  });

  it('drops a waiter whose request is aborted', async () => {
    const budget = createMemoryBudget(10, 5);
    const hold = await budget.acquire(10, never);
    const controller = new AbortController();
    const waiting = budget.acquire(5, controller.signal);
    controller.abort(new Error('client gone'));
    await expect(waiting).rejects.toThrow('client gone');
    expect(budget.waiting).toBe(0);
    hold();
    expect(budget.inUse).toBe(0);
  });

  it('lets a file larger than the whole budget run alone', async () => {
    const budget = createMemoryBudget(10, 5);
    const release = await budget.acquire(50, never);
    expect(budget.inUse).toBe(10);
    release();
  });
});
