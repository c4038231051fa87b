// Load client for the small-file scenario (bench/small-files.mjs), its own process: `clients`
// keep-alive connections, each posting one multipart request with one file of `size` bytes,
// waiting for the answer, and posting the next, for `durationMs`. Bodies are built once per
// client (one random block, an exact Content-Length). Bounded: every request is cut after
// `timeoutMs`.
//
//   node bench/small-client.mjs '{"url":"http://127.0.0.1:3000/uploads","clients":16,"size":65536,"durationMs":3000}'
//
// Prints one JSON line: { requests, ok, seconds, reqPerS, p50Ms, p99Ms, statuses, cpuSeconds, error? }.
import { randomFillSync } from 'node:crypto';
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

// `rate` (optional): requests per second across all clients at most; each client then starts a
// request no sooner than clients / rate seconds after its previous one (a load at a fixed rate,
// to compare servers' memory at the same throughput).
const { url, clients = 1, size, durationMs = 3000, timeoutMs = 30_000, rate } = JSON.parse(process.argv[2] ?? '{}');
const intervalMs = rate > 0 ? (clients / rate) * 1000 : 0;
const BOUNDARY = '----s3su-small-bench-Qm9vRmVlZEJlbmNo';
const block = randomFillSync(Buffer.allocUnsafe(size));

function body(i) {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="small-${i}.bin"\r\n` +
        `Content-Type: application/octet-stream\r\n\r\n`,
    ),
    block,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

function postOne(agent, payload) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        timeout: timeoutMs,
        headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': payload.length },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - t0;
          const status = res.statusCode ?? 0;
          resolve({ status, ms, ...(status >= 300 ? { error: Buffer.concat(chunks).toString('utf8').slice(0, 200) } : {}) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ status: 0, ms: performance.now() - t0, error: String(err) }));
    req.end(payload);
  });
}

const results = [];
const t0 = performance.now();
const end = t0 + durationMs;
await Promise.all(
  Array.from({ length: clients }, async (_, i) => {
    // One connection per client, reused (keep-alive), as a calling service's HTTP client does.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const payload = body(i);
    // Spread the clients' first requests over one interval, so a fixed rate is not sent in bursts.
    let next = performance.now() + (intervalMs * i) / clients;
    while (performance.now() < end) {
      if (intervalMs) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        next = Math.max(next + intervalMs, performance.now());
      }
      results.push(await postOne(agent, payload));
    }
    agent.destroy();
  }),
);
const seconds = (performance.now() - t0) / 1000;
const ok = results.filter((r) => r.status >= 200 && r.status < 300);
const lat = ok.map((r) => r.ms).sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : undefined);
const statuses = {};
for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
const cpu = process.cpuUsage();
process.stdout.write(
  JSON.stringify({
    requests: results.length,
    ok: ok.length,
    seconds,
    reqPerS: ok.length / seconds,
    p50Ms: pct(50),
    p99Ms: pct(99),
    statuses,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    ...(ok.length < results.length ? { error: results.find((r) => r.error)?.error } : {}),
  }) + '\n',
);
