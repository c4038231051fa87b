/**
 * What the part uploader adds to the SDK's requests: the payload hash it signs with (or
 * UNSIGNED-PAYLOAD over TLS), and the checksums that let S3's answer confirm what it stored.
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';

type BodyCommand = UploadPartCommand | PutObjectCommand;

/** The slice of the SDK's middleware stack used here (the commands' own types are overloads). */
interface BuildStack {
  add(
    middleware: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>,
    options: { step: 'build'; name: string; override: boolean },
  ): void;
}

/**
 * Sends `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the signer then uses that header instead of
 * hashing the body. S3 allows it; TLS protects the payload in transit, and a CRC32 (when the
 * checksum mode asks for one) still checks it end to end
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
 */
export function withUnsignedPayload<C extends BodyCommand>(command: C): C {
  (command.middlewareStack as unknown as BuildStack).add(
    (next) => async (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'unsignedPayloadMiddleware', override: true },
  );
  return command;
}

/** CRC32 as S3 writes it (`x-amz-checksum-crc32`): base64 of the 4 big-endian bytes. */
export function crc32Base64(data: Uint8Array): string {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(crc32(data) >>> 0, 0);
  return out.toString('base64');
}

/** MD5 of the bytes: base64 for `Content-MD5`, hex for comparing with a plain PutObject's ETag. */
export function md5Of(data: Uint8Array): { base64: string; hex: string } {
  const digest = createHash('md5').update(data).digest();
  return { base64: digest.toString('base64'), hex: digest.toString('hex') };
}
