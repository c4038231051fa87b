import { randomUUID } from 'node:crypto';

/** Longest sanitized name kept after the id in a key (characters). */
const MAX_SAFE_NAME = 100;

/**
 * An ASCII-only, path-free rendering of a client file name, for readability of keys only:
 * accents are folded (NFKD, combining marks dropped), anything outside `[A-Za-z0-9._-]`
 * becomes `-`, leading dots and dashes go (no `..`, no hidden files). May be empty.
 */
export function sanitizeFilename(filename: string): string {
  const folded = filename.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
  const safe = folded
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[.-]+/, '')
    .replace(/\.{2,}/g, '.');
  return safe.slice(0, MAX_SAFE_NAME).replace(/[.-]+$/, '');
}

/**
 * Object key for a new file: `<prefix><id>/<sanitized name>` (or `<prefix><id>` when nothing
 * of the name survives). The id leads so keys spread over S3's per-prefix request rates
 * (3,500 writes/s per prefix); the raw client name never reaches the key.
 */
export function buildKey(prefix: string, id: string, filename: string): string {
  const safe = sanitizeFilename(filename);
  return safe ? `${prefix}${id}/${safe}` : `${prefix}${id}`;
}

/** Default id generator: a random UUID (122 bits of randomness, no coordination needed). */
export function newObjectId(): string {
  return randomUUID();
}
