/**
 * What the part uploader adds to the SDK's requests: the checksums that let S3's answer
 * confirm what it stored. (UNSIGNED-PAYLOAD over TLS: s3-call.ts.)
 */
import { createHash } from 'node:crypto';

/** A CRC32 value as S3 writes it (`x-amz-checksum-crc32`): base64 of the 4 big-endian bytes. */
export function crc32ToBase64(value: number): string {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out.toString('base64');
}

/** MD5 of the bytes: base64 for `Content-MD5`, hex for comparing with a plain PutObject's ETag. */
export function md5Of(data: Uint8Array): { base64: string; hex: string } {
  const digest = createHash('md5').update(data).digest();
  return { base64: digest.toString('base64'), hex: digest.toString('hex') };
}
