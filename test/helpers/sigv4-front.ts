/**
 * A stand-in for the IAM check a Function URL (`AuthType: AWS_IAM`) or an `aws_iam` API
 * Gateway route makes before the function runs, for tests: it reads the whole request (as
 * Lambda does, up to its 6 MB payload), hashes the body, and recomputes the SigV4 signature
 * from what it received with the AWS SDK's own signer (@smithy/signature-v4): the
 * credential scope (access key, date, region, service), the signed headers as they arrived,
 * and the payload hash, which must be the real one (`x-amz-content-sha256` equal to the
 * SHA-256 of the body: Lambda refuses an empty-body or UNSIGNED hash for a POST with a body).
 * Anything wrong is a 403 `{"message":"Forbidden"}` and is never forwarded; a good request is
 * proxied to the Node server, its answer streamed back.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

export interface SigV4FrontOptions {
  /** The Node server behind it. */
  target: string;
  region: string;
  service: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Largest body read, bytes (Lambda: 6 MB). */
  maxBodyBytes?: number;
}

export interface FrontRequest {
  method: string;
  path: string;
  /** `ok` when forwarded, else why it was refused. */
  verdict: string;
}

export interface SigV4Front {
  url: string;
  readonly requests: FrontRequest[];
  close(): Promise<void>;
}

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;
/** SigV4 requests older or newer than this are refused (AWS allows 5 minutes of skew). */
const MAX_SKEW_MS = 5 * 60_000;

export async function startSigV4Front(options: SigV4FrontOptions): Promise<SigV4Front> {
  const target = new URL(options.target);
  const maxBody = options.maxBodyBytes ?? 6 * 1024 * 1024;
  const requests: FrontRequest[] = [];
  const signer = new SignatureV4({
    region: options.region,
    service: options.service,
    credentials: options.credentials,
    sha256: Hash.bind(null, 'sha256'),
    uriEscapePath: true,
  });

  async function verify(req: IncomingMessage, body: Buffer): Promise<string> {
    const m = AUTH.exec(String(req.headers['authorization'] ?? ''));
    if (!m) return 'no SigV4 authorization header';
    const [, accessKeyId, day, region, service, signedList, signature] = m as unknown as string[];
    if (accessKeyId !== options.credentials.accessKeyId) return 'unknown access key';
    if (region !== options.region || service !== options.service) return `wrong scope ${region}/${service}`;
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const dm = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
    if (!dm || amzDate.slice(0, 8) !== day) return 'bad x-amz-date';
    const signingDate = new Date(Date.UTC(+dm[1]!, +dm[2]! - 1, +dm[3]!, +dm[4]!, +dm[5]!, +dm[6]!));
    if (Math.abs(Date.now() - signingDate.getTime()) > MAX_SKEW_MS) return 'request time too skewed';
    const bodyHash = createHash('sha256').update(body).digest('hex');
    if (req.headers['x-amz-content-sha256'] !== bodyHash) return 'payload hash does not match the body';
    const signed = signedList!.split(';');
    for (const required of ['host', 'x-amz-date', 'x-amz-content-sha256']) {
      if (!signed.includes(required)) return `${required} is not signed`;
    }
    // Only what the caller signed, as it arrived; the signer recomputes the rest.
    const headers: Record<string, string> = {};
    for (const name of signed) {
      const value = req.headers[name];
      if (value === undefined) return `signed header ${name} is missing`;
      headers[name] = Array.isArray(value) ? value.join(',') : value;
    }
    const url = new URL(req.url ?? '/', 'http://front');
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const expected = await signer.sign(
      { method: req.method ?? 'GET', protocol: 'http:', hostname: headers['host']!, path: url.pathname, query, headers },
      { signingDate, signingRegion: region!, signingService: service! },
    );
    const want = /Signature=([0-9a-f]{64})/.exec(String(expected.headers['authorization']))?.[1] ?? '';
    const ok = want.length === signature!.length && timingSafeEqual(Buffer.from(want), Buffer.from(signature!));
    return ok ? 'ok' : 'signature does not match';
  }

  function forward(req: IncomingMessage, body: Buffer, res: ServerResponse): void {
    const headers = { ...req.headers, host: target.host, 'content-length': String(body.length) };
    delete headers['transfer-encoding'];
    delete headers['authorization'];
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBody) chunks.push(c);
    });
    req.on('end', () => {
      const entry: FrontRequest = { method: req.method ?? '', path: req.url ?? '', verdict: '' };
      requests.push(entry);
      if (size > maxBody) {
        entry.verdict = 'body too large';
        res.writeHead(413, { 'content-type': 'application/json' }).end('{"message":"Request Entity Too Large"}');
        return;
      }
      const body = Buffer.concat(chunks);
      verify(req, body).then(
        (verdict) => {
          entry.verdict = verdict;
          if (verdict === 'ok') forward(req, body, res);
          else res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"Forbidden"}');
        },
        (err: unknown) => {
          entry.verdict = `error: ${String(err)}`;
          res.writeHead(500).end();
        },
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
