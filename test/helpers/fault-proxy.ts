/**
 * A fault-injecting HTTP proxy for S3, for tests: started on a random loopback port in front
 * of a real S3 server (radosgw, s3rver), it forwards every request unchanged (the Host header
 * too, so SigV4 signatures made for the proxy still verify upstream) unless a rule says to
 * fail it. It records every request, so tests can assert which S3 calls were sent and how
 * often (e.g. that AbortMultipartUpload was sent after a failure).
 *
 * Actions (what S3 and the networks in front of it really do):
 * - `500`: `500 InternalError` with S3's XML error body.
 * - `503-slowdown`: `503 SlowDown` with S3's XML error body (request-rate throttling,
 *   https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
 * - `reset`: reads the request, then resets the TCP connection (RST) without answering.
 * - `drop-response`: forwards the request to S3, then resets the connection instead of
 *   relaying S3's answer: the call took effect but the client cannot know it.
 * - `stall`: reads the request and never answers; stalled sockets are destroyed by
 *   {@link FaultProxy.releaseStalled} and by {@link FaultProxy.close}.
 */
import { once } from 'node:events';
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type FaultAction = '500' | '503-slowdown' | 'reset' | 'drop-response' | 'stall';

/** The S3 operation a request is, from its method and query (path-style addressing). */
export type S3Operation =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'ListMultipartUploads'
  | 'PutObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'ListObjects'
  | 'Other';

export interface ProxiedRequest {
  /** 1-based order of arrival. */
  seq: number;
  method: string;
  /** Path without the query, e.g. `/bucket/uploads/<id>/a.bin`. */
  pathname: string;
  /** Query parameters; a bare `?uploads` gives `{ uploads: '' }`. */
  query: Record<string, string>;
  op: S3Operation;
  /** What the proxy did: `forward` or the fault it injected. */
  action: 'forward' | FaultAction;
  /** Upstream status, for forwarded requests, once known. */
  status?: number;
  /** When it arrived (performance.now(), ms). */
  at: number;
}

export interface FaultRule {
  /** Which requests the rule counts. */
  match: (req: Omit<ProxiedRequest, 'seq' | 'action' | 'status' | 'at'>) => boolean;
  /** The rule fires from the nth matching request on (1-based). Default 1. */
  nth?: number;
  /** How many times it fires, then it lets requests through. Default: forever. */
  times?: number;
  action: FaultAction;
}

export interface FaultProxy {
  /** `http://127.0.0.1:<port>`: use it as the S3 endpoint. */
  url: string;
  /** Every request seen, in order of arrival. */
  readonly requests: ProxiedRequest[];
  /** Replaces the rules and resets their counters. */
  setRules(rules: FaultRule[]): void;
  /** Requests of one operation (optionally only those that got a fault). */
  count(op: S3Operation, action?: ProxiedRequest['action']): number;
  /** Forgets the recorded requests. */
  clearLog(): void;
  /** Faults injected so far, by action (since start). */
  readonly injected: Record<FaultAction, number>;
  /** Destroys every stalled socket (the client sees a dropped connection). Returns how many. */
  releaseStalled(): number;
  close(): Promise<void>;
}

/** Classifies a request by method and query, as S3's REST API routes them. */
export function s3Operation(method: string, pathname: string, query: Record<string, string>): S3Operation {
  const hasKey = pathname.split('/').filter(Boolean).length >= 2;
  if (method === 'POST' && 'uploads' in query) return 'CreateMultipartUpload';
  if (method === 'POST' && 'uploadId' in query) return 'CompleteMultipartUpload';
  if (method === 'PUT' && 'uploadId' in query && 'partNumber' in query) return 'UploadPart';
  if (method === 'DELETE' && 'uploadId' in query) return 'AbortMultipartUpload';
  if (method === 'GET' && 'uploadId' in query) return 'ListParts';
  if (method === 'GET' && 'uploads' in query) return 'ListMultipartUploads';
  if (!hasKey) return method === 'GET' ? 'ListObjects' : 'Other';
  // The SDK tags some requests with `?x-id=<Operation>`.
  if (method === 'PUT' && Object.keys(query).every((k) => k === 'x-id')) return 'PutObject';
  if (method === 'GET') return 'GetObject';
  if (method === 'HEAD') return 'HeadObject';
  if (method === 'DELETE') return 'DeleteObject';
  return 'Other';
}

/** A rule predicate: requests of these S3 operations. */
export function isOp(...ops: S3Operation[]): FaultRule['match'] {
  return (req) => ops.includes(req.op);
}

const S3_ERRORS: Record<'500' | '503-slowdown', { status: number; code: string; message: string }> = {
  '500': { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  '503-slowdown': { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
};

function errorXml(code: string, message: string, resource: string, requestId: string): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</Resource>` +
    `<RequestId>${requestId}</RequestId><HostId>fault-proxy</HostId></Error>`
  );
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const requests: ProxiedRequest[] = [];
  const injected: Record<FaultAction, number> = { '500': 0, '503-slowdown': 0, reset: 0, 'drop-response': 0, stall: 0 };
  let rules: Array<{ rule: FaultRule; seen: number; fired: number }> = [];
  const stalled = new Set<Socket>();
  const sockets = new Set<Socket>();
  let seq = 0;

  function pickAction(info: Omit<ProxiedRequest, 'seq' | 'action' | 'status' | 'at'>): 'forward' | FaultAction {
    // Every matching rule counts the request; the first one that is due fires.
    let chosen: 'forward' | FaultAction = 'forward';
    for (const r of rules) {
      if (!r.rule.match(info)) continue;
      r.seen++;
      const due = r.seen >= (r.rule.nth ?? 1) && r.fired < (r.rule.times ?? Infinity);
      if (due && chosen === 'forward') {
        r.fired++;
        chosen = r.rule.action;
      }
    }
    return chosen;
  }

  async function drain(req: IncomingMessage): Promise<void> {
    req.resume();
    if (!req.readableEnded) await once(req, 'end').catch(() => {});
  }

  function forward(req: IncomingMessage, res: ServerResponse, entry: ProxiedRequest, dropResponse: boolean): void {
    const up = request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
        agent,
      },
      (upRes) => {
        entry.status = upRes.statusCode;
        if (dropResponse) {
          // S3 did the work; the client never hears of it.
          upRes.resume();
          upRes.once('end', () => req.socket.resetAndDestroy());
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      },
    );
    up.on('error', () => {
      if (!res.headersSent) req.socket.destroy();
      else res.destroy();
    });
    req.pipe(up);
    req.on('error', () => up.destroy());
    res.on('close', () => {
      // The client went away before the answer: stop the upstream request as well.
      if (!res.writableFinished) up.destroy();
    });
  }

  const server = createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const query = Object.fromEntries(url.searchParams);
    const method = req.method ?? 'GET';
    const info = { method, pathname: url.pathname, query, op: s3Operation(method, url.pathname, query) };
    const action = pickAction(info);
    const entry: ProxiedRequest = { seq: ++seq, ...info, action, at: performance.now() };
    requests.push(entry);
    if (action !== 'forward') injected[action]++;

    switch (action) {
      case 'forward':
        return forward(req, res, entry, false);
      case 'drop-response':
        return forward(req, res, entry, true);
      case '500':
      case '503-slowdown': {
        const e = S3_ERRORS[action];
        void drain(req).then(() => {
          const body = errorXml(e.code, e.message, url.pathname, `fault-${entry.seq}`);
          res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        });
        return;
      }
      case 'reset':
        void drain(req).then(() => req.socket.resetAndDestroy());
        return;
      case 'stall':
        stalled.add(req.socket);
        req.socket.once('close', () => stalled.delete(req.socket));
        req.resume();
        return;
    }
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    injected,
    setRules(next) {
      rules = next.map((rule) => ({ rule, seen: 0, fired: 0 }));
    },
    count(op, action) {
      return requests.filter((r) => r.op === op && (action === undefined || r.action === action)).length;
    },
    clearLog() {
      requests.length = 0;
    },
    releaseStalled() {
      const n = stalled.size;
      for (const socket of stalled) socket.destroy();
      stalled.clear();
      return n;
    },
    async close() {
      rules = [];
      for (const socket of stalled) socket.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
