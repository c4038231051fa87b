/**
 * Readiness (`/readyz`): can this instance take uploads now? Not while it drains, and not
 * while its object store does not answer. The store is asked with one cheap request (the
 * storage layer's probe, HeadBucket on S3) whose result is reused for `cacheMs`, and probes
 * never overlap: however often a load balancer or orchestrator asks, S3 sees at most one
 * request per `cacheMs`, never one per probe.
 */
import type { Logger } from '../logger.ts';

export interface ReadinessOptions {
  /** Resolves when the store answers; rejects when it cannot be reached. Cut by `signal`. */
  probe: (signal: AbortSignal) => Promise<void>;
  /** How long a probe's result is reused, ms. Default 2000. */
  cacheMs?: number;
  /** A probe not answered within this counts as unreachable, ms. Default 1500. */
  timeoutMs?: number;
  /** Logs each change between reachable and unreachable (with the error). */
  logger?: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
}

export type ReadinessState = { ready: true } | { ready: false; reason: 'draining' | 'storage unreachable' };

export interface Readiness {
  /** The store's state, probed at most once per `cacheMs`. */
  check(): Promise<ReadinessState>;
}

export function createReadiness(options: ReadinessOptions): Readiness {
  const cacheMs = options.cacheMs ?? 2000;
  const timeoutMs = options.timeoutMs ?? 1500;
  const now = options.now ?? Date.now;
  let last: { at: number; reachable: boolean } | undefined;
  let running: Promise<boolean> | undefined;

  const probeOnce = async (): Promise<boolean> => {
    let reachable: boolean;
    let error: unknown;
    try {
      await options.probe(AbortSignal.timeout(timeoutMs));
      reachable = true;
    } catch (err) {
      reachable = false;
      error = err;
    }
    if (last === undefined ? !reachable : last.reachable !== reachable) {
      if (reachable) options.logger?.info('object store reachable again: ready');
      else options.logger?.warn('object store unreachable: not ready', { err: error });
    }
    last = { at: now(), reachable };
    return reachable;
  };

  return {
    async check() {
      let reachable: boolean;
      if (last !== undefined && now() - last.at < cacheMs) reachable = last.reachable;
      else {
        running ??= probeOnce().finally(() => (running = undefined));
        reachable = await running;
      }
      return reachable ? { ready: true } : { ready: false, reason: 'storage unreachable' };
    },
  };
}
