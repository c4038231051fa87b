/**
 * ObjectSink on S3 through lib-storage's `Upload`: one multipart upload per file, parts of
 * `partBytes` sent `queueSize` at a time, so a file costs about partBytes x (queueSize + 1)
 * of memory whatever its size. A body under one part goes as a single PutObject.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { UploadError } from '../core/errors.ts';
import type { CoreLogger } from '../core/upload-files.ts';
import type { ObjectSink, PutObjectInput, PutObjectOutput } from '../core/sink.ts';
import { confirmStored } from './confirm-stored.ts';
import { createS3Cleanup } from './s3-cleanup.ts';
import { storageError } from './s3-errors.ts';

export interface S3SinkOptions {
  client: S3Client;
  bucket: string;
  /** Multipart part size, bytes (5 MiB..5 GiB). */
  partBytes: number;
  /** Parts in flight per file. */
  queueSize: number;
  logger?: CoreLogger;
  /** Attempts for AbortMultipartUpload on top of the SDK's own retries. Default 3. */
  abortAttempts?: number;
  /**
   * Time allowed for clean-up calls (AbortMultipartUpload with its retries, DeleteObject), ms.
   * Bounded so a stalled S3 cannot hold a Lambda past its deadline; the bucket's lifecycle
   * rule is the safety net for an abort that did not get through. Default 2000.
   */
  cleanupTimeoutMs?: number;
}

/**
 * lib-storage sends its requests without an abort signal. This view of the client gives each
 * call of an upload one: UploadPart requests stop as soon as the request fails (the parts are
 * discarded by the abort anyway, and a stalled S3 must not keep the upload open), every other
 * call only at a deadline (see `put`).
 */
function clientWithSignals(client: S3Client, onFailure: AbortSignal, onDeadline: AbortSignal): S3Client {
  return new Proxy(client, {
    get(target, prop) {
      if (prop === 'send') {
        return (command: Parameters<S3Client['send']>[0], options?: { abortSignal?: AbortSignal }) =>
          target.send(command, { ...options, abortSignal: isUploadPart(command) ? onFailure : onDeadline });
      }
      // The target as receiver: the SDK's getters and methods may use private fields.
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * Told by its input, not by `instanceof`: lib-storage may load the CommonJS build of the S3
 * client while this module has the ES one (two distinct UploadPartCommand classes).
 */
function isUploadPart(command: { input?: unknown }): boolean {
  const input = command.input as { PartNumber?: unknown; UploadId?: unknown } | undefined;
  return input?.PartNumber !== undefined && input.UploadId !== undefined;
}

export function createS3Sink(options: S3SinkOptions): ObjectSink {
  const { client, bucket, partBytes, queueSize, logger } = options;
  const abortAttempts = options.abortAttempts ?? 3;
  const cleanupTimeoutMs = options.cleanupTimeoutMs ?? 2000;

  const { removeObject, undoFailedPut } = createS3Cleanup({ client, bucket, logger, abortAttempts, cleanupTimeoutMs });

  return {
    bucket,

    async put(input: PutObjectInput): Promise<PutObjectOutput> {
      const { key, body, signal } = input;
      // Two ways to stop. Any failure stops *reading* (the body is failed, no new part or
      // PutObject starts) and cuts UploadParts in flight. PutObject, Create and Complete
      // requests already sent are let finish so their outcome is known (an object that lands
      // is deleted by the core): one cut after S3 got it may still land after our
      // DeleteObject, a risk taken only at a deadline, when there is no time to wait.
      const hardStop = new AbortController();
      const upload = new Upload({
        client: clientWithSignals(client, signal, hardStop.signal),
        params: {
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentType: input.contentType,
          ContentDisposition: input.contentDisposition,
          Metadata: input.metadata,
        },
        partSize: partBytes,
        queueSize,
        // The abort is ours (s3-cleanup.ts): lib-storage's would go unawaited after abort() and
        // its error would replace the one that caused it.
        leavePartsOnError: true,
      });
      // Stop by failing the body, not with upload.abort(): abort() makes done() reject at
      // once while parts and the abort still run unawaited in the background.
      const onAbort = (): void => {
        const reason: unknown = signal.reason;
        if (!body.readableEnded) body.destroy(reason instanceof Error ? reason : new Error('aborted'));
        if (reason instanceof UploadError && reason.code === 'TIMEOUT') hardStop.abort(reason);
      };
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      let out: Awaited<ReturnType<Upload['done']>>;
      try {
        out = await upload.done();
      } catch (err) {
        await undoFailedPut(key, upload.uploadId, err, hardStop.signal.aborted);
        throw storageError(err, 'store the file');
      } finally {
        signal.removeEventListener('abort', onAbort);
      }

      return confirmStored(out, { client, bucket, key, signal: hardStop.signal, remove: removeObject, logger });
    },

    delete: (key: string, versionId?: string) => removeObject(key, versionId),
  };
}
