import type { Writable } from 'node:stream';
import type { Context } from 'aws-lambda';

export declare const HTTP_INTEGRATION_CONTENT_TYPE: string;
export declare function installRuntimeGlobals(): () => void;
export declare function createResponseStream(options?: { highWaterMark?: number; onChunk?: (chunk: Buffer) => void }): {
  stream: Writable & { setContentType(type: string): void };
  bytes(): Buffer;
  contentType(): string;
};
export declare function parseHttpIntegrationResponse(contentType: string, raw: Buffer): { prelude: unknown; body: Buffer };
export declare function createContext(options?: { timeoutMs?: number; requestId?: string }): Context;
export interface InvokeResult {
  contentType: string;
  statusCode: number | undefined;
  headers: Record<string, string>;
  body: string;
  streamEndedBeforeReturn: boolean;
}
export declare function invoke(
  handler: (event: never, stream: never, context: Context) => Promise<void>,
  event: unknown,
  options?: { timeoutMs?: number; requestId?: string; onChunk?: (chunk: Buffer) => void },
): Promise<InvokeResult>;
