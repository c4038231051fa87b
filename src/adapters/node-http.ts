/**
 * node:http adapter: turns a request into one `app.handle()` call and writes the answer with
 * backpressure. Only what is node:http's own lives here: the socket closing aborts the
 * request, and a body the app did not read is drained (or the connection closed).
 */
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientClosed, type App } from '../app/app.ts';
import { NDJSON_CONTENT_TYPE } from '../protocol.ts';

export interface NodeAdapterOptions {
  /**
   * After a failed upload the rest of the body is read and dropped so the client sees the
   * response instead of a reset; past this many bytes the connection is closed instead.
   * Default 16 MiB.
   */
  maxDrainBytes?: number;
}

export function createRequestListener(
  app: App,
  options: NodeAdapterOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const maxDrainBytes = options.maxDrainBytes ?? 16 * 1024 * 1024;
  return (req, res) => {
    serve(app, req, res, maxDrainBytes).catch(() => res.destroy());
  };
}

async function serve(app: App, req: IncomingMessage, res: ServerResponse, maxDrainBytes: number): Promise<void> {
  const controller = new AbortController();
  // 'close' before the response finished means the client went away: abort its uploads.
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(clientClosed());
  };
  res.on('close', onClose);
  try {
    const response = await app.handle({
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?', 1)[0]!,
      headers: flatHeaders(req),
      body: req,
      signal: controller.signal,
    });
    if (response.unreadBody === 'close' && !req.complete) res.setHeader('connection', 'close');
    if (response.headers['content-type'] === NDJSON_CONTENT_TYPE) {
      res.writeHead(response.status, response.headers);
      // NDJSON lines must reach the client as they are written, not when a buffer fills.
      res.flushHeaders();
      for await (const chunk of response.body) {
        if (res.destroyed) break;
        if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
      }
      if (!res.destroyed) res.end();
    } else {
      // Any other answer is one small document: sent with its Content-Length, head and body
      // in one write.
      let text = '';
      for await (const chunk of response.body) text += chunk;
      res.writeHead(response.status, { ...response.headers, 'content-length': Buffer.byteLength(text) });
      if (!res.destroyed) res.end(text);
    }
    if (!req.complete && response.unreadBody === 'drain') drainRequest(req, maxDrainBytes);
  } finally {
    res.off('close', onClose);
  }
}

/** Header names are lowercase already; a repeated header is joined as HTTP allows. */
function flatHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const headers = req.headers;
  // node:http joins repeated headers itself, all but a few (set-cookie): copy only then.
  let flat = true;
  for (const name in headers) if (Array.isArray(headers[name])) flat = false;
  if (flat) return headers as Record<string, string | undefined>;
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

/**
 * Reads and drops what is left of a failed request's body, so that clients still sending
 * get the response rather than a connection reset; closes the connection past a bound.
 */
function drainRequest(req: IncomingMessage, maxBytes: number): void {
  let drained = 0;
  req.on('data', (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > maxBytes) req.socket.destroy();
  });
  req.on('error', () => {});
  req.resume();
}
