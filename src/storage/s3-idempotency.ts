/**
 * IdempotencyStore on S3: one small JSON object per (caller, key) under
 * `<prefix><id>.json`, in the upload bucket (Lambda instances share nothing else).
 *
 * Create-if-absent is `PutObject` with `If-None-Match: *` and a takeover is `If-Match: <ETag>`
 * (S3 conditional writes, https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
 * with them, two instances racing for one key cannot both win. Not every S3 honours them
 * (measured: radosgw 16 honours If-None-Match, and If-Match only with the ETag unquoted;
 * s3rver ignores both and overwrites), so the first use probes the store once on a scratch
 * key and falls back where needed: read-then-write (safe within one process only, thanks to
 * the app's lock) and delete-then-create for takeovers.
 */
import { randomUUID } from 'node:crypto';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { IdempotencyRecord, IdempotencyStore, VersionedRecord } from '../core/idempotency-store.ts';
import type { CoreLogger } from '../core/logger.ts';
import { isNotFound, storageError } from './s3-errors.ts';

export interface S3IdempotencyStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix of the records, e.g. `uploads/.idempotency/`. */
  prefix: string;
  logger?: CoreLogger;
}

/** What the store honours, found by {@link probeConditionalWrites}. */
export interface ConditionalWrites {
  ifNoneMatch: boolean;
  /** How If-Match takes the ETag, or 'none' when it is ignored or refused. */
  ifMatch: 'quoted' | 'unquoted' | 'none';
}

interface SdkErrorLike {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * True when a conditional write lost: 412 PreconditionFailed, or 409 ConditionalRequestConflict
 * (AWS: a concurrent conditional write to the same key is in flight).
 */
function conditionFailed(err: unknown): boolean {
  const e = (err ?? {}) as SdkErrorLike;
  const status = e.$metadata?.httpStatusCode;
  return status === 412 || status === 409 || e.name === 'PreconditionFailed' || e.name === 'ConditionalRequestConflict';
}

export function createS3IdempotencyStore(options: S3IdempotencyStoreOptions): IdempotencyStore & {
  /** The probe's result (probing once if not done yet). */
  conditionalWrites(): Promise<ConditionalWrites>;
} {
  const { client, bucket, prefix, logger } = options;
  const keyOf = (id: string) => `${prefix}${id}.json`;
  let probed: Promise<ConditionalWrites> | undefined;
  const conditionalWrites = (): Promise<ConditionalWrites> => {
    probed ??= probeConditionalWrites(client, bucket, prefix).then(
      (found) => {
        if (!found.ifNoneMatch || found.ifMatch === 'none') {
          logger?.warn(
            'the object store does not honour every S3 conditional write: idempotency keys are safe within one process only',
            {
              ...found,
            },
          );
        }
        return found;
      },
      (err: unknown) => {
        probed = undefined;
        throw storageError(err, 'probe conditional writes');
      },
    );
    return probed;
  };

  const write = async (id: string, record: IdempotencyRecord, condition: { IfNoneMatch?: string; IfMatch?: string } = {}) => {
    const out = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: keyOf(id),
        Body: JSON.stringify(record),
        ContentType: 'application/json',
        ...condition,
      }),
    );
    return out.ETag ?? '';
  };

  const get = async (id: string): Promise<VersionedRecord | undefined> => {
    try {
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: keyOf(id) }));
      const text = (await out.Body?.transformToString()) ?? '';
      return { record: JSON.parse(text) as IdempotencyRecord, version: out.ETag ?? '' };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw storageError(err, 'read an idempotency record');
    }
  };

  const create = async (id: string, record: IdempotencyRecord, honoured: boolean) => {
    try {
      if (!honoured) {
        const existing = await get(id);
        if (existing) return { existing };
      }
      return { version: await write(id, record, honoured ? { IfNoneMatch: '*' } : {}) };
    } catch (err) {
      // Someone else's record is there: read it (it may already be gone again).
      if (conditionFailed(err)) return { existing: await get(id) };
      throw storageError(err, 'write an idempotency record');
    }
  };

  return {
    conditionalWrites,

    async create(id, record) {
      return create(id, record, (await conditionalWrites()).ifNoneMatch);
    },

    async replace(id, record, version) {
      const { ifMatch, ifNoneMatch } = await conditionalWrites();
      if (ifMatch === 'none') {
        // Delete-then-create: two takers racing may both win (documented in docs/idempotency.md).
        await this.delete(id);
        const out = await create(id, record, ifNoneMatch);
        return 'version' in out ? out.version : undefined;
      }
      try {
        return await write(id, record, { IfMatch: ifMatch === 'quoted' ? version : version.replace(/"/g, '') });
      } catch (err) {
        if (conditionFailed(err) || isNotFound(err)) return undefined;
        throw storageError(err, 'replace an idempotency record');
      }
    },

    async put(id, record) {
      try {
        await write(id, record);
      } catch (err) {
        throw storageError(err, 'write an idempotency record');
      }
    },

    async delete(id) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyOf(id) }));
      } catch (err) {
        if (isNotFound(err)) return;
        throw storageError(err, 'delete an idempotency record');
      }
    },
  };
}

/**
 * Finds out which conditional writes the store honours, on a scratch key under `prefix`
 * (a few requests, once per process): a second `If-None-Match: *` must fail, an `If-Match`
 * with the current ETag must pass (quoted as S3 returns it, else unquoted) and a wrong one fail.
 */
export async function probeConditionalWrites(client: S3Client, bucket: string, prefix: string): Promise<ConditionalWrites> {
  const Key = `${prefix}probe-${randomUUID()}.json`;
  const put = async (condition: { IfNoneMatch?: string; IfMatch?: string }): Promise<string | undefined> => {
    try {
      const out = await client.send(new PutObjectCommand({ Bucket: bucket, Key, Body: '{}', ...condition }));
      return out.ETag ?? '';
    } catch (err) {
      if (conditionFailed(err) || (err as SdkErrorLike).$metadata?.httpStatusCode === 501) return undefined;
      throw err;
    }
  };
  try {
    const etag = await put({ IfNoneMatch: '*' });
    if (etag === undefined) throw new Error('a conditional create of a fresh key failed');
    const ifNoneMatch = (await put({ IfNoneMatch: '*' })) === undefined;
    if (!ifNoneMatch) return { ifNoneMatch, ifMatch: 'none' };
    // A store that ignores If-Match would let this through.
    if ((await put({ IfMatch: '"00000000000000000000000000000000"' })) !== undefined) return { ifNoneMatch, ifMatch: 'none' };
    if ((await put({ IfMatch: etag })) !== undefined) return { ifNoneMatch, ifMatch: 'quoted' };
    const current = etag.replace(/"/g, '');
    if ((await put({ IfMatch: current })) !== undefined) return { ifNoneMatch, ifMatch: 'unquoted' };
    return { ifNoneMatch, ifMatch: 'none' };
  } finally {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key })).catch(() => {});
  }
}
