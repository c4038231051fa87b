/**
 * The logging port of the core and storage: what they need of a logger, nothing more. The
 * service's structured JSON logger (src/logger.ts) satisfies it; tests pass a recorder.
 */
export interface CoreLogger {
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}
