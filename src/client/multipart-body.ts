/**
 * A `multipart/form-data` body (RFC 7578) streamed from its sources (files on disk, bytes):
 * a ReadableStream that reads each file in 64 KiB slices only when fetch pulls, so memory
 * does not grow with the files. Caller fields go first: the service stores the text fields
 * that come before a file as that file's metadata. Its exact length is known up front (sizes from stat), so it goes with a
 * Content-Length, as API Gateway and proxies prefer.
 */
import { randomBytes } from 'node:crypto';
import { UploadClientError } from './errors.ts';
import type { ByteSource, SourceReader } from './sources.ts';

export interface BodyFile {
  source: ByteSource;
  /** File name sent in Content-Disposition. */
  name: string;
  contentType: string;
  size: number;
  /** Form field name. */
  field: string;
  /** SHA-256 (hex) sent in a `sha256` field just before the file, for the service to check. */
  sha256?: string;
}

const SLICE = 64 * 1024;

/** `filename="<ascii>"; filename*=UTF-8''<exact>` (RFC 6266 section 4.3, RFC 5987). */
export function dispositionParams(name: string): string {
  const ascii = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^\x20-\x7e]|["\\]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return ascii === name ? `filename="${ascii}"` : `filename="${ascii}"; filename*=UTF-8''${exact}`;
}

export interface MultipartBody {
  contentType: string;
  length: number;
  /** A fresh stream over the same bytes (a retry needs a new one). */
  stream(onBytes: (fileIndex: number, bytes: number) => void): ReadableStream<Uint8Array>;
}

const fieldPart = (boundary: string, name: string, value: string) =>
  `--${boundary}\r\nContent-Disposition: form-data; name="${name.replace(/["\r\n]/g, '_')}"\r\n\r\n${value}\r\n`;

/** `fields`: text fields sent before the first file, in order (the caller's metadata). */
export function multipartBody(files: readonly BodyFile[], fields: ReadonlyArray<readonly [string, string]> = []): MultipartBody {
  const boundary = `----s3su-${randomBytes(12).toString('hex')}`;
  const fieldText = fields.map(([name, value]) => fieldPart(boundary, name, value)).join('');
  const heads = files.map((f, i) =>
    Buffer.from(
      (i === 0 ? fieldText : '') +
        (f.sha256 ? `--${boundary}\r\nContent-Disposition: form-data; name="sha256"\r\n\r\n${f.sha256}\r\n` : '') +
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.field.replace(/["\r\n]/g, '_')}"; ${dispositionParams(f.name)}\r\n` +
        `Content-Type: ${f.contentType.replace(/[\r\n]/g, '')}\r\n\r\n`,
      'utf8',
    ),
  );
  const crlf = Buffer.from('\r\n');
  const tail = Buffer.from(`--${boundary}--\r\n`);
  const length = files.reduce((n, f, i) => n + heads[i]!.length + f.size + crlf.length, tail.length);

  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    length,
    stream(onBytes) {
      let index = 0;
      let stage: 'head' | 'file' | 'crlf' = 'head';
      let handle: SourceReader | undefined;
      let offset = 0;
      const close = async () => {
        const h = handle;
        handle = undefined;
        await h?.close();
      };
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            if (index >= files.length) {
              controller.enqueue(tail);
              controller.close();
              return;
            }
            const file = files[index]!;
            if (stage === 'head') {
              controller.enqueue(heads[index]!);
              stage = 'file';
              offset = 0;
              handle = await file.source.open();
              return;
            }
            if (stage === 'file') {
              const want = Math.min(SLICE, file.size - offset);
              if (want > 0) {
                // A fresh buffer per slice: the stream owns what it was given.
                const buf = Buffer.allocUnsafe(want);
                const bytesRead = await handle!.read(buf, 0, want, offset);
                if (bytesRead === 0) throw new Error(`${file.name} is shorter than its size when the upload started`);
                offset += bytesRead;
                onBytes(index, bytesRead);
                controller.enqueue(buf.subarray(0, bytesRead));
                return;
              }
              await close();
              stage = 'crlf';
            }
            controller.enqueue(crlf);
            stage = 'head';
            index++;
          } catch (err) {
            await close().catch(() => {});
            controller.error(
              err instanceof UploadClientError
                ? err
                : new UploadClientError('FILE_ERROR', `Reading a file failed: ${String(err)}`, { cause: err }),
            );
          }
        },
        async cancel() {
          await close();
        },
      });
    },
  };
}
