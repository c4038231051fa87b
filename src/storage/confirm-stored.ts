import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { CoreLogger } from '../core/logger.ts';
import type { PutObjectOutput } from '../core/sink.ts';
import { sendS3 } from './s3-call.ts';
import { storageError } from './s3-errors.ts';

/** What S3 answered to PutObject or CompleteMultipartUpload (the fields used here). */
export interface StoreAnswer {
  ETag?: string | undefined;
  VersionId?: string | undefined;
  ChecksumCRC32?: string | undefined;
}

/** What was sent, so the answer can be checked against it. */
export interface SentBytes {
  /** Bytes sent (all parts). */
  bytes: number;
  /** CRC32 sent with a single PutObject (base64). */
  crc32?: string | undefined;
  /** MD5 sent as Content-MD5 with a single PutObject (hex). */
  md5Hex?: string | undefined;
  /** Multipart: every UploadPart answer echoed the CRC32 sent with it. */
  partsConfirmed?: boolean;
}

/**
 * `auto`: read the size back (HeadObject) only when the answer does not already confirm the
 * bytes; `always`: read it back after every upload.
 */
export type ReadBack = 'auto' | 'always';

/**
 * How S3's answer proves it stored the bytes sent, or undefined when it does not: it echoed
 * the CRC32 it verified (AWS with checksums on), or a plain PutObject's ETag is the MD5 of the
 * bytes whose Content-MD5 it checked (AWS without SSE-KMS, radosgw, s3rver, MinIO).
 */
export function confirmationOf(answer: StoreAnswer, sent: SentBytes): 'checksum' | 'etag' | undefined {
  if (sent.crc32 !== undefined && answer.ChecksumCRC32 === sent.crc32) return 'checksum';
  if (sent.partsConfirmed) return 'checksum';
  const etag = answer.ETag?.replace(/"/g, '').toLowerCase();
  if (sent.md5Hex !== undefined && etag === sent.md5Hex) return 'etag';
  return undefined;
}

/**
 * Turns S3's answer into the sink's output. When the answer confirms the bytes (see
 * `confirmationOf`) the stored size is the size sent: one round trip per small file. Else the
 * size is read back (HeadObject) for the core to compare with the bytes it counted: it catches
 * a store that kept something else than what was sent (e.g. aws-chunked framing). When that
 * check cannot run the object is removed, so a file is never left behind unreported.
 */
export async function confirmStored(
  answer: StoreAnswer,
  sent: SentBytes,
  options: {
    client: S3Client;
    bucket: string;
    key: string;
    readBack: ReadBack;
    /** Cuts the HeadObject (a deadline). */
    signal: AbortSignal;
    remove: (key: string, versionId?: string) => Promise<void>;
    logger: CoreLogger | undefined;
  },
): Promise<PutObjectOutput> {
  const { client, bucket, key } = options;
  const versionId = answer.VersionId;
  const out: PutObjectOutput = {
    etag: answer.ETag ?? '',
    bytesRead: sent.bytes,
    ...(versionId ? { versionId } : {}),
    ...(answer.ChecksumCRC32 ? { checksumCRC32: answer.ChecksumCRC32 } : {}),
  };
  const confirmed = options.readBack === 'auto' ? confirmationOf(answer, sent) : undefined;
  if (confirmed) return { ...out, storedSize: sent.bytes, confirmedBy: confirmed };
  try {
    const head = await sendS3(
      client,
      new HeadObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }),
      { signal: options.signal },
      (c, o) => client.send(c, o),
    );
    return { ...out, ...(head.ContentLength !== undefined ? { storedSize: head.ContentLength } : {}), confirmedBy: 'read-back' };
  } catch (err) {
    await options
      .remove(key, versionId)
      .catch((e: unknown) => options.logger?.error('DeleteObject after a failed HeadObject failed', { key, err: e }));
    throw storageError(err, 'confirm the stored file');
  }
}
