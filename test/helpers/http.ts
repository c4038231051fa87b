/** A streaming HTTP client for tests: posts a Readable body and collects the response. */
import { request } from 'node:http';
import type { Readable } from 'node:stream';

export interface PostResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
  /** NDJSON lines, parsed. */
  lines: unknown[];
}

export interface PostOptions {
  headers?: Record<string, string | number>;
  /** Called once the response head arrives (NDJSON tests look at the first byte). */
  onResponse?: () => void;
}

export function post(url: string, body: Readable | Buffer | string, options: PostOptions = {}): Promise<PostResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: options.headers }, (res) => {
      options.onResponse?.();
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        const lines = text
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => {
            try {
              return JSON.parse(l) as unknown;
            } catch {
              return l;
            }
          });
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, lines });
      });
    });
    req.on('error', reject);
    if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    }
  });
}

export async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}
