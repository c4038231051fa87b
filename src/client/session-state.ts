import type { CompletedPart } from '../protocol.ts';

/**
 * What it takes to resume a direct upload: the session and the parts S3 already holds. Plain
 * JSON, so a caller (or the CLI's `--state` file) can keep it on disk between runs.
 */
export interface SessionState {
  /** The service's signed session id. */
  sessionId: string;
  /** The file, as given to upload(), and what identified it (a changed file is not resumed). */
  path: string;
  size: number;
  mtimeMs: number;
  key: string;
  partSize: number;
  partCount: number;
  /** ISO 8601; a session past it cannot be resumed. */
  expiresAt: string;
  /** Parts uploaded so far, with the ETag S3 gave each. */
  parts: CompletedPart[];
}

/** The saved session for a file, if one matches it exactly and has not expired. */
export function findResumable(
  states: readonly SessionState[] | undefined,
  file: { path: string; size: number; mtimeMs: number },
  now = Date.now(),
): SessionState | undefined {
  return states?.find(
    (s) => s.path === file.path && s.size === file.size && s.mtimeMs === file.mtimeMs && Date.parse(s.expiresAt) - now > 60_000,
  );
}
