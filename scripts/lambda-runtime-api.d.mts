export declare const HTTP_INTEGRATION_CONTENT_TYPE: string;
export declare function runtimeClientEntry(): string;
export declare function parseHttpIntegrationResponse(contentType: string, raw: Buffer): { prelude: unknown; body: Buffer };

export interface RuntimeError {
  type: string | undefined;
  errorType?: string;
  errorMessage?: string;
  trace?: string[];
}

export interface RuntimeInvokeResult {
  requestId: string;
  /** A new process was started for this invocation. */
  coldStart: boolean;
  /** The Content-Type of the runtime's response POST. */
  contentType: string;
  /** `streaming` for a streamed response. */
  responseMode: string | undefined;
  /** From the prelude; undefined when the runtime wrote none. */
  statusCode: number | undefined;
  headers: Record<string, string>;
  /** Everything the runtime posted as the response: prelude, 8 NUL bytes, body. */
  raw: Buffer;
  body: string;
  /** The runtime's error trailers (a handler that rejected after the response started). */
  trailers:
    | { errorType: string | undefined; errorBody: { errorType?: string; errorMessage?: string; trace?: string[] } | undefined }
    | undefined;
  /** A POST to /invocation/{id}/error. */
  error: RuntimeError | undefined;
  /** A POST to /init/error by the process that was to run this invocation. */
  initError: RuntimeError | undefined;
  /** The process exited during the invocation. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Killed at the deadline, as Lambda does. */
  timedOut: boolean;
  /** The response ended, with no error trailers, and the runtime asked for the next event. */
  streamEndedBeforeReturn: boolean;
}

export interface RuntimeInvokeOptions {
  requestId?: string;
  /** The function's timeout: the deadline handed to the runtime is now + this, ms. Default 60000. */
  timeoutMs?: number;
  /** When the sandbox is killed, ms from now. Default: at the deadline. */
  killAfterMs?: number;
  onChunk?: (chunk: Buffer) => void;
}

export interface LambdaRuntime {
  invoke(event: unknown, options?: RuntimeInvokeOptions): Promise<RuntimeInvokeResult>;
  readonly starts: number;
  readonly pid: number | undefined;
  logs(): Array<{ stream: 'stdout' | 'stderr'; line: string }>;
  close(): Promise<void>;
}

export declare function startLambdaRuntime(options: {
  /** The directory of the function's code (LAMBDA_TASK_ROOT). */
  taskRoot: string;
  /** `file.export`, as in serverless.yml (_HANDLER). */
  handler: string;
  /** The function's environment variables. */
  env?: Record<string, string>;
  functionName?: string;
  memoryMB?: number;
  /** Stop the process while it waits for the next event (Lambda's freeze). Default true. */
  freeze?: boolean;
  onLog?: (stream: 'stdout' | 'stderr', line: string) => void;
}): Promise<LambdaRuntime>;
