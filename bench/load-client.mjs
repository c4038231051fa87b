// Load client for the benchmarks, run as its own process so its CPU and memory stay apart from
// the server's. Posts `count` multipart/form-data requests at once, each with one file of
// `size` bytes of generated random data (one random block reused: nothing is held in memory
// but that block, and no hashing), with an exact Content-Length. Bounded: every request is
// cut after `timeoutMs`.
//
//   node bench/load-client.mjs '{"url":"http://127.0.0.1:3000/uploads","count":1,"size":1073741824}'
//
// Prints one JSON line: { ok, seconds, bytes, okBytes, statuses, cpuSeconds,
// requests: [{ status, seconds, size? }], error? }.
import { randomFillSync } from 'node:crypto';
import { request } from 'node:http';
import { clearTimeout, setTimeout } from 'node:timers';

const opts = JSON.parse(process.argv[2] ?? '{}');
const { url, count = 1, size, timeoutMs = 600_000 } = opts;
const CHUNK = opts.chunkBytes ?? 256 * 1024;
const BOUNDARY = '----s3su-bench-boundary-Qm9vRmVlZEJlbmNo';
const block = randomFillSync(Buffer.allocUnsafe(CHUNK));

function head(i) {
  return Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nbench\r\n` +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench-${i}.bin"\r\n` +
      `Content-Type: application/octet-stream\r\n\r\n`,
  );
}
const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);

function postOne(i) {
  const h = head(i);
  const length = h.length + size + tail.length;
  return new Promise((resolve) => {
    const t0 = performance.now();
    let settled = false;
    const done = (r) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, seconds: (performance.now() - t0) / 1000 });
    };
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': length },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', (err) => done({ status: res.statusCode, error: String(err) }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body;
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
          const stored = body?.files?.[0]?.size;
          done({
            status: res.statusCode,
            ...(stored !== undefined ? { size: stored } : {}),
            ...(res.statusCode >= 300 ? { error: text.slice(0, 300) } : {}),
          });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (err) => done({ status: 0, error: String(err) }));

    // Write with backpressure: the server's pace sets ours.
    let sent = 0;
    const pump = () => {
      while (sent < size) {
        const n = Math.min(CHUNK, size - sent);
        sent += n;
        if (!req.write(n === CHUNK ? block : block.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end(tail);
    };
    req.write(h);
    pump();
  });
}

const t0 = performance.now();
const results = await Promise.all(Array.from({ length: count }, (_, i) => postOne(i)));
const seconds = (performance.now() - t0) / 1000;
const stored = (r) => r.status >= 200 && r.status < 300 && (r.size === undefined || r.size === size);
const ok = results.every(stored);
const statuses = {};
for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
process.stdout.write(
  JSON.stringify({
    ok,
    seconds,
    bytes: size * count,
    /** Bytes of the requests that were stored (2xx, size as sent). */
    okBytes: size * results.filter(stored).length,
    statuses,
    // This process's own CPU (user + system), seconds: the client shares the cores too.
    cpuSeconds: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
    requests: results,
    ...(ok ? {} : { error: results.find((r) => r.error)?.error ?? 'size mismatch' }),
  }) + '\n',
);
