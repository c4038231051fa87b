/**
 * A push-to-pull queue: the pipeline pushes events from stream callbacks, the consumer
 * pulls them with `for await`. Progress events of one file are coalesced while they wait,
 * so a slow reader (Lambda's 2 MB/s after the first 6 MB) never makes the queue grow.
 */
export class EventChannel<T> {
  #queue: T[] = [];
  #closed = false;
  #wake: (() => void) | undefined;
  readonly #sameSlot: (queued: T, next: T) => boolean;

  /** @param sameSlot true when `next` may replace `queued` (same file's progress). */
  constructor(sameSlot: (queued: T, next: T) => boolean = () => false) {
    this.#sameSlot = sameSlot;
  }

  push(item: T): void {
    if (this.#closed) return;
    const last = this.#queue.at(-1);
    if (last !== undefined && this.#sameSlot(last, item)) this.#queue[this.#queue.length - 1] = item;
    else this.#queue.push(item);
    this.#notify();
  }

  close(): void {
    this.#closed = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    for (;;) {
      if (this.#queue.length > 0) {
        yield this.#queue.shift() as T;
        continue;
      }
      if (this.#closed) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
