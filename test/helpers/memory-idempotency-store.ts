/**
 * An in-memory IdempotencyStore for unit tests: create-if-absent and replace-if-version are
 * atomic, as S3 conditional writes are. It records every write and can fail on cue.
 */
import type { IdempotencyRecord, IdempotencyStore, VersionedRecord } from '../../src/core/idempotency-store.ts';
import { UploadError } from '../../src/core/errors.ts';

export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly records = new Map<string, VersionedRecord>();
  /** Every write, in order: `create`, `replace`, `put:<state>`, `delete`. */
  readonly log: string[] = [];
  /** Fail unconditional puts of completed records (the completion of a request). */
  failComplete = false;
  #version = 0;

  async create(id: string, record: IdempotencyRecord) {
    const existing = this.records.get(id);
    if (existing) return { existing: structuredClone(existing) };
    this.log.push('create');
    return { version: this.#set(id, record) };
  }

  async replace(id: string, record: IdempotencyRecord, version: string) {
    if (this.records.get(id)?.version !== version) return undefined;
    this.log.push('replace');
    return this.#set(id, record);
  }

  async put(id: string, record: IdempotencyRecord) {
    if (this.failComplete && record.state === 'completed') {
      throw new UploadError('STORAGE_FAILED', 'The object store failed to write an idempotency record (503 SlowDown)');
    }
    this.log.push(`put:${record.state}`);
    this.#set(id, record);
  }

  async delete(id: string) {
    this.log.push('delete');
    this.records.delete(id);
  }

  #set(id: string, record: IdempotencyRecord): string {
    const version = `v${++this.#version}`;
    this.records.set(id, { record: structuredClone(record), version });
    return version;
  }
}
