/**
 * S3 user metadata for a stored file. S3 caps user metadata at 2 KB, "the sum of the number
 * of bytes in the UTF-8 encoding of each key and value"
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingMetadata.html), and sends it as
 * HTTP headers, so every value here is percent-encoded UTF-8 (read it back with
 * `decodeURIComponent`) and every key is a lowercase header token.
 */

/** S3's user-metadata budget, bytes. */
export const METADATA_BUDGET_BYTES = 2048;
/** Metadata key holding the original file name. */
export const FILENAME_METADATA_KEY = 'original-filename';
/** Metadata key naming the caller that stored the object (see src/app/auth.ts). */
export const UPLOADED_BY_METADATA_KEY = 'uploaded-by';
/** Longest encoded `filename*` in Content-Disposition, bytes (S3 takes 8 KB of headers in all). */
const MAX_DISPOSITION_NAME_BYTES = 2048;

export interface FileMetadata {
  metadata: Record<string, string>;
  /** Field names left out because they did not fit the budget or clash with a reserved key. */
  omitted: string[];
}

/** Lowercase header-token form of a field name (`My Field` -> `my-field`); may be empty. */
export function metadataKey(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** Percent-encodes a value, cut at a code-point boundary so it never exceeds `maxBytes`. */
export function encodeMetadataValue(value: string, maxBytes = Infinity): string {
  // The whole value encodes as its code points do one by one: cut only when it does not fit.
  const whole = encodeURIComponent(value);
  if (whole.length <= maxBytes) return whole;
  let out = '';
  for (const ch of value) {
    const enc = encodeURIComponent(ch);
    if (out.length + enc.length > maxBytes) break;
    out += enc;
  }
  return out;
}

/**
 * Builds the metadata of one file: the service's own entries first (`uploaded-by`: they are
 * the audit trail and always fit), then its original name, which may take what they leave
 * (a 255-character non-ASCII name, legal on macOS and Windows, encodes to up to 1,530 bytes),
 * then the text fields that came before it in the form, in order, while they fit. A field can
 * never replace one of the service's entries.
 */
export function buildFileMetadata(
  filename: string,
  fields: ReadonlyArray<readonly [string, string]>,
  own: Readonly<Record<string, string>> = {},
): FileMetadata {
  const metadata: Record<string, string> = {};
  const omitted: string[] = [];
  let used = 0;
  for (const [key, value] of Object.entries(own)) {
    metadata[key] = encodeMetadataValue(value, METADATA_BUDGET_BYTES / 2);
    used += key.length + metadata[key].length;
  }
  const encodedName = encodeMetadataValue(filename, METADATA_BUDGET_BYTES - used - FILENAME_METADATA_KEY.length);
  metadata[FILENAME_METADATA_KEY] = encodedName;
  used += FILENAME_METADATA_KEY.length + encodedName.length;
  for (const [name, value] of fields) {
    const key = metadataKey(name);
    const encoded = encodeMetadataValue(value);
    const cost = key.length + encoded.length;
    if (!key || key in metadata || used + cost > METADATA_BUDGET_BYTES) {
      omitted.push(name);
      continue;
    }
    metadata[key] = encoded;
    used += cost;
  }
  return { metadata, omitted };
}

/**
 * Content-Disposition for the stored object: an ASCII fallback name plus the exact name as
 * RFC 5987 `filename*` (RFC 6266 section 4.3), so downloads keep the original name.
 */
export function contentDisposition(filename: string, asciiFallback: string): string {
  const fallback = asciiFallback.replace(/["\\]/g, '') || 'file';
  // RFC 5987 attr-char excludes ' ( ) * which encodeURIComponent leaves as they are.
  const encoded = encodeMetadataValue(filename, MAX_DISPOSITION_NAME_BYTES).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${fallback}"; filename*=UTF-8''${encoded}`;
}
