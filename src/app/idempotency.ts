/**
 * Idempotent retries of `POST /uploads` (`Idempotency-Key` header). A caller whose answer was
 * lost retries with the same key and gets the first request's answer; nothing is stored twice.
 *
 * One small record per (caller, key) lives in the bucket (Lambda instances share no memory):
 * `in-progress` while the first request runs, `completed` with its fingerprint and answer once
 * every file is stored, removed when it fails (all-or-nothing: the retry then runs afresh).
 * The completed record is written before `done` is answered (the core's `commit` hook), so a
 * retry after a lost answer always finds it. A retry of a completed key reads its body against
 * a sink that only hashes and compares fingerprints: equal replays the answer, different is 422.
 *
 * Races between instances are settled by the store's create-if-absent (S3 conditional writes);
 * within one process a lock settles them too, for stores that ignore conditional writes.
 * See docs/idempotency.md.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { errorPayload, toUploadError, UploadError } from '../core/errors.ts';
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../core/sink.ts';
import type { ParsedPart, UploadDeps } from '../core/upload-files.ts';
import type { CoreLogger } from '../core/logger.ts';
import type { IdempotencyRecord, IdempotencyStore } from '../core/idempotency-store.ts';
import type { UploadEvent, UploadResult } from '../protocol.ts';

/** Retry-After of a 409 IDEMPOTENCY_IN_PROGRESS, seconds: small uploads finish within it. */
export const IDEMPOTENCY_RETRY_AFTER_SECONDS = 2;

/** RFC 9110 field values allow more, but keys are identifiers: printable ASCII, 1..255 characters. */
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /** A completed record older than this is ignored and the key runs afresh, seconds. */
  ttlSeconds: number;
  /**
   * An in-progress record not refreshed for this long belongs to a request that died (process
   * killed, Lambda timeout) and may be taken over, seconds. Its owner refreshes it every quarter
   * of this, so a long upload is never taken for dead.
   */
  staleSeconds: number;
  logger?: CoreLogger;
  /** Clock, ms since the epoch. Default Date.now. */
  now?: () => number;
}

/** What a log line says about a keyed request. */
export type IdempotencyOutcome = 'stored' | 'released' | 'replayed' | 'reused' | 'in-progress';

/** The decision for one keyed request. */
export type Admission =
  | { kind: 'refused'; error: UploadError; headers: Record<string, string>; outcome?: IdempotencyOutcome }
  | { kind: 'owner'; claim: Claim; takenOver: boolean }
  | { kind: 'replay'; record: IdempotencyRecord; release: () => void };

/** The first request's hold on its key. */
export interface Claim {
  /** Records the answer; rejects (UploadError) when it could not be written. */
  complete(fingerprint: string, answer: UploadResult): Promise<void>;
  /** Removes the record (the request failed and stored nothing); never rejects. */
  abandon(): Promise<void>;
}

export interface Idempotency {
  admit(caller: string, key: string): Promise<Admission>;
}

/** The record's id: callers never share keys, and the key never reaches an object name. */
export function recordId(caller: string, key: string): string {
  return createHash('sha256').update(`${caller}\n${key}`).digest('hex');
}

export function createIdempotency(options: IdempotencyOptions): Idempotency {
  const { store, logger } = options;
  const now = options.now ?? Date.now;
  const ttlMs = options.ttlSeconds * 1000;
  const staleMs = options.staleSeconds * 1000;
  /** Keys this process is handling: a second request for one waits for its answer (409). */
  const held = new Set<string>();

  const inProgress = (): Admission => ({
    kind: 'refused',
    error: new UploadError(
      'IDEMPOTENCY_IN_PROGRESS',
      `A request with this Idempotency-Key is still running; retry in ${IDEMPOTENCY_RETRY_AFTER_SECONDS} s`,
    ),
    headers: { 'retry-after': String(IDEMPOTENCY_RETRY_AFTER_SECONDS) },
    outcome: 'in-progress',
  });

  function claimFor(id: string, first: IdempotencyRecord): Claim {
    let state: 'open' | 'completed' | 'abandoned' = 'open';
    // Writes go one after the other: a heartbeat landing after the completion would undo it.
    let writes: Promise<void> = Promise.resolve();
    const timer = setInterval(
      () => {
        writes = writes
          .then(() => store.put(id, { ...first, updatedAt: new Date(now()).toISOString() }))
          .catch((err: unknown) => logger?.warn('could not refresh an idempotency record', { err }));
      },
      Math.max(1000, staleMs / 4),
    );
    timer.unref();
    const stopHeartbeat = async (): Promise<void> => {
      clearInterval(timer);
      await writes;
    };
    return {
      async complete(fingerprint, answer) {
        if (state !== 'open') return;
        await stopHeartbeat();
        const at = new Date(now()).toISOString();
        // On failure the claim stays open: the core fails the request and abandon() follows.
        await store.put(id, { state: 'completed', startedAt: first.startedAt, updatedAt: at, fingerprint, answer });
        state = 'completed';
        held.delete(id);
      },
      async abandon() {
        if (state !== 'open') return;
        state = 'abandoned';
        await stopHeartbeat();
        try {
          await store.delete(id);
        } catch (err) {
          // The record stays in progress until it is stale; retries get 409 until then.
          logger?.error('could not remove the idempotency record of a failed request', { err });
        } finally {
          held.delete(id);
        }
      },
    };
  }

  return {
    async admit(caller, key) {
      if (!KEY_PATTERN.test(key)) {
        const error = new UploadError('BAD_REQUEST', 'Idempotency-Key must be 1 to 255 printable ASCII characters');
        return { kind: 'refused', error, headers: {} };
      }
      const id = recordId(caller, key);
      if (held.has(id)) return inProgress();
      held.add(id);
      let keep = false;
      try {
        // A few rounds: a record may change between reading and replacing it.
        for (let round = 0; round < 3; round++) {
          const at = new Date(now()).toISOString();
          const fresh: IdempotencyRecord = { state: 'in-progress', startedAt: at, updatedAt: at };
          const created = await store.create(id, fresh);
          if ('version' in created) {
            keep = true;
            return { kind: 'owner', claim: claimFor(id, fresh), takenOver: false };
          }
          const existing = created.existing;
          if (!existing) continue;
          const age = now() - Date.parse(existing.record.updatedAt);
          if (existing.record.state === 'completed' && age < ttlMs) {
            keep = true;
            return { kind: 'replay', record: existing.record, release: () => held.delete(id) };
          }
          if (existing.record.state === 'in-progress' && age < staleMs) return inProgress();
          // Expired, or its request died: this request takes the key over.
          if ((await store.replace(id, fresh, existing.version)) !== undefined) {
            logger?.warn('idempotency record taken over', { state: existing.record.state, ageMs: age });
            keep = true;
            return { kind: 'owner', claim: claimFor(id, fresh), takenOver: true };
          }
        }
        return inProgress();
      } catch (err) {
        const error = toUploadError(err);
        return { kind: 'refused', error, headers: {} };
      } finally {
        if (!keep) held.delete(id);
      }
    },
  };
}

/**
 * SHA-256 of a request as parsed: every part in order (field names and values; each file's
 * field, filename, content type), then each file's size and SHA-256. A client that rebuilds
 * the body (a new boundary, other header casing) keeps the fingerprint; any change of content,
 * order or metadata changes it.
 */
export function createFingerprint(): { onPart: (part: ParsedPart) => void; digest: (result: UploadResult) => string } {
  const hash = createHash('sha256');
  return {
    onPart(part) {
      const entry =
        part.kind === 'field' ? [part.kind, part.name, part.value] : [part.kind, part.field, part.filename, part.contentType];
      hash.update(JSON.stringify(entry) + '\n');
    },
    digest(result) {
      return hash
        .copy()
        .update(JSON.stringify(result.files.map((f) => [f.size, f.sha256])))
        .digest('hex');
    },
  };
}

/** A sink that reads every file to its end and stores nothing (the replay's dry run). */
export function createDiscardingSink(bucket: string): ObjectSink {
  return {
    bucket,
    async put(input: PutObjectInput): Promise<PutObjectOutput> {
      let bytes = 0;
      for await (const chunk of input.body as Readable) bytes += (chunk as Buffer).length;
      return { etag: '', bytesRead: bytes, storedSize: bytes };
    },
    async delete() {},
  };
}

/** A keyed request on its way: the events to render, and what its log line says. */
export interface AdmittedUpload {
  events: AsyncIterable<UploadEvent>;
  /** Known once the events have ended. */
  outcome(): IdempotencyOutcome | undefined;
}

/**
 * Runs an admitted request: the owner stores with hashing on and commits its record before
 * `done`; a replay reads the body against the discarding sink, compares fingerprints, then
 * yields the recorded `file-stored` events and `done` (or 422). `start` runs the core.
 */
export function runAdmitted(
  admission: Exclude<Admission, { kind: 'refused' }>,
  deps: UploadDeps,
  start: (deps: UploadDeps) => AsyncIterable<UploadEvent>,
): AdmittedUpload {
  let outcome: IdempotencyOutcome | undefined;
  const fingerprint = createFingerprint();
  if (admission.kind === 'owner') {
    const { claim } = admission;
    const events = start({
      ...deps,
      sha256: true,
      onPart: fingerprint.onPart,
      commit: (result) => claim.complete(fingerprint.digest(result), result),
    });
    return {
      outcome: () => outcome,
      events: (async function* () {
        try {
          for await (const event of events) {
            if (event.type === 'done') outcome = 'stored';
            if (event.type === 'error') {
              outcome = 'released';
              await claim.abandon();
            }
            yield event;
          }
        } finally {
          // The consumer stopped early (client gone): the core undid the request, so free the key.
          if (outcome !== 'stored') {
            outcome = 'released';
            await claim.abandon();
          }
        }
      })(),
    };
  }

  const { record } = admission;
  // The dry run takes no memory from the budget: the budget belongs to the S3 sink's part
  // buffers, and the discarding sink holds none.
  const dry = deps;
  const events = start({ ...dry, sink: createDiscardingSink(deps.sink.bucket), sha256: true, onPart: fingerprint.onPart });
  return {
    outcome: () => outcome,
    events: (async function* () {
      try {
        let done: UploadResult | undefined;
        for await (const event of events) {
          // A body that fails on its own (too large, malformed) gets its own answer.
          if (event.type === 'error') {
            yield event;
            return;
          }
          if (event.type === 'done') done = event;
        }
        if (!done || !record.answer || fingerprint.digest(done) !== record.fingerprint) {
          outcome = 'reused';
          const error = new UploadError(
            'IDEMPOTENCY_KEY_REUSED',
            'This Idempotency-Key was used for a different request; send a new key for a new request',
          );
          yield { type: 'error', ...errorPayload(error) };
          return;
        }
        outcome = 'replayed';
        for (const file of record.answer.files) yield { type: 'file-stored', ...file };
        yield { type: 'done', ...record.answer };
      } finally {
        admission.release();
      }
    })(),
  };
}
