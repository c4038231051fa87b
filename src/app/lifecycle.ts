/**
 * The app's in-flight requests and the drain of a process that is shutting down. The Node
 * server owns one (SIGTERM starts the drain); the Lambda function has none: its platform
 * stops an instance only between invocations, and the app then works exactly as before.
 *
 * Every upload or session request the app takes is tracked with a signal of its own that
 * `abortAll()` fires, so a drain past its deadline aborts them the all-or-nothing way the
 * core already knows (multipart uploads aborted, stored files deleted, a 503 answer).
 */
import { UploadError } from '../core/errors.ts';

export interface Lifecycle {
  /** True once `startDraining()` was called: new uploads are refused with 503 SHUTTING_DOWN. */
  readonly draining: boolean;
  /** Requests taken and not yet answered to their end. */
  readonly inFlight: number;
  /**
   * Tracks one request; `signal` fires on `abortAll()` and when `parent` (the request's own
   * signal) does, with its reason. `end()` must be called exactly once.
   */
  begin(parent?: AbortSignal): { signal: AbortSignal; end(): void };
  startDraining(): void;
  /** Resolves once no request is in flight (at once when none is). */
  idle(): Promise<void>;
  /** Aborts every request in flight with `reason`; returns how many there were. */
  abortAll(reason: UploadError): number;
}

export function createLifecycle(): Lifecycle {
  let draining = false;
  const active = new Set<AbortController>();
  let waiters: Array<() => void> = [];

  const settle = (): void => {
    if (active.size > 0) return;
    const ready = waiters;
    waiters = [];
    for (const wake of ready) wake();
  };

  return {
    get draining() {
      return draining;
    },
    get inFlight() {
      return active.size;
    },
    begin(parent) {
      const controller = new AbortController();
      active.add(controller);
      // One listener instead of AbortSignal.any(): no weak references per request.
      const follow = (): void => controller.abort(parent!.reason);
      if (parent?.aborted) follow();
      else parent?.addEventListener('abort', follow, { once: true });
      let ended = false;
      return {
        signal: controller.signal,
        end() {
          if (ended) return;
          ended = true;
          parent?.removeEventListener('abort', follow);
          active.delete(controller);
          settle();
        },
      };
    },
    startDraining() {
      draining = true;
    },
    idle() {
      if (active.size === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
    abortAll(reason) {
      const n = active.size;
      for (const controller of active) controller.abort(reason);
      return n;
    },
  };
}

/** The refusal of a request that arrives while the server drains. */
export function shuttingDown(): UploadError {
  return new UploadError('SHUTTING_DOWN', 'The server is shutting down; retry (another instance will take it)');
}

/** The abort reason of uploads still running when the drain time is up. */
export function drainDeadline(timeoutMs: number): UploadError {
  return new UploadError('SHUTTING_DOWN', `The server shut down before the upload finished (drain time ${timeoutMs} ms)`);
}
