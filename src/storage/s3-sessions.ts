/**
 * SessionStore on S3: multipart uploads driven by the service, parts PUT by the caller with
 * presigned UploadPart URLs (SigV4 query signing, no request made to sign).
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { UploadError } from '../core/errors.ts';
import type { CreateMultipartInput, ListedPart, SessionStore, StoredObjectInfo } from '../core/session-store.ts';
import type { CompletedPart } from '../protocol.ts';
import {
  isNoSuchUpload,
  isNotFound,
  isNotImplemented,
  isPartRefusal,
  isUploadGone,
  sessionGone,
  storageError,
} from './s3-errors.ts';

export interface S3SessionStoreOptions {
  client: S3Client;
  /**
   * Client used only to presign. It must not add flexible checksums: with
   * `requestChecksumCalculation: 'WHEN_SUPPORTED'` the SDK hoists an `x-amz-checksum-crc32` of
   * the (empty) body into the URL and every PUT of real bytes fails. Default `client`.
   */
  presignClient?: S3Client;
  bucket: string;
}

export function createS3SessionStore(options: S3SessionStoreOptions): SessionStore {
  const { client, bucket } = options;
  const presignClient = options.presignClient ?? client;

  return {
    bucket,

    async createMultipart(input: CreateMultipartInput): Promise<string> {
      try {
        const out = await client.send(
          new CreateMultipartUploadCommand({
            Bucket: bucket,
            Key: input.key,
            ContentType: input.contentType,
            ContentDisposition: input.contentDisposition,
            Metadata: input.metadata,
          }),
        );
        if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
        return out.UploadId;
      } catch (err) {
        throw storageError(err, 'start the upload');
      }
    },

    async presignPart(key, uploadId, partNumber, expiresInSeconds) {
      try {
        return await getSignedUrl(
          presignClient,
          new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber }),
          { expiresIn: expiresInSeconds },
        );
      } catch (err) {
        throw storageError(err, 'sign a part URL');
      }
    },

    async listParts(key, uploadId): Promise<ListedPart[] | undefined> {
      const parts: ListedPart[] = [];
      let marker: string | undefined;
      try {
        for (;;) {
          const out = await client.send(
            new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MaxParts: 1000, PartNumberMarker: marker }),
          );
          for (const p of out.Parts ?? []) {
            parts.push({ partNumber: p.PartNumber ?? 0, size: p.Size ?? 0, etag: p.ETag ?? '' });
          }
          if (!out.IsTruncated || !out.NextPartNumberMarker) break;
          marker = out.NextPartNumberMarker;
        }
      } catch (err) {
        if (isUploadGone(err)) throw sessionGone(err);
        if (isNotImplemented(err)) return undefined;
        throw storageError(err, 'list the uploaded parts');
      }
      return parts.sort((a, b) => a.partNumber - b.partNumber);
    },

    async complete(key, uploadId, parts: CompletedPart[]) {
      try {
        const out = await client.send(
          new CompleteMultipartUploadCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
          }),
        );
        return { etag: out.ETag ?? '', ...(out.VersionId ? { versionId: out.VersionId } : {}) };
      } catch (err) {
        if (isNoSuchUpload(err)) throw sessionGone(err);
        const refusal = isPartRefusal(err);
        if (refusal) throw new UploadError('PART_MISMATCH', `The object store refused the parts (${refusal})`, { cause: err });
        throw storageError(err, 'complete the upload');
      }
    },

    async head(key): Promise<StoredObjectInfo | undefined> {
      try {
        const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return { size: out.ContentLength ?? 0, etag: out.ETag ?? '', ...(out.VersionId ? { versionId: out.VersionId } : {}) };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw storageError(err, 'read the object back');
      }
    },

    async readStart(key, bytes) {
      try {
        const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=0-${bytes - 1}` }));
        const chunks: Buffer[] = [];
        for await (const chunk of out.Body as AsyncIterable<Buffer>) chunks.push(chunk);
        return Buffer.concat(chunks).subarray(0, bytes);
      } catch (err) {
        throw storageError(err, 'read the object back');
      }
    },

    async abort(key, uploadId) {
      try {
        await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
      } catch (err) {
        if (isNotFound(err)) return;
        throw storageError(err, 'abort the upload');
      }
    },

    async delete(key, versionId) {
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, ...(versionId ? { VersionId: versionId } : {}) }));
      } catch (err) {
        if (isNotFound(err)) return;
        throw storageError(err, 'delete the object');
      }
    },
  };
}
