// Where a server's peak RSS goes under load: every `--every-ms` it samples the server's /proc
// status (RSS, anonymous, file-backed), its /proc smaps (glibc's heap, V8's pages, the other
// anonymous mappings) and, for the service, its /metrics (V8 heap spaces, external memory, the
// upload memory budget in use), during the small-file load (64 KiB x 64 keep-alive clients by
// default, S3 10 ms away) or one large-file load (`--count=10 --size=1GiB`, S3 without delay).
// Prints the idle sample, the sample at the peak RSS, the maximum of each figure and the sample
// after the load, and the server's CPU; writes bench/results/rss-breakdown[-name].json.
//
//   node bench/rss-breakdown.mjs --variant=service [--clients=64 --size=64KiB --duration-ms=4000]
//   node bench/rss-breakdown.mjs --variant=service --count=10 --size=1GiB
//   node bench/rss-breakdown.mjs --variant=proxy --rate=500   the same 64 clients, at most 500 requests/s in all
//   options: --env=K=V,K=V (added to the variant's environment) --node-args="--flag ..." --src=REV --name=x
//
// The scrapes cost the server a few ms of CPU each, counted in its CPU figure: read the memory
// figures, not req/s.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildBundles } from './build.mjs';
import { MiB, ROOT, cliArg, cpuSeconds, loadAverage, runClient, runSmallClient, startDiscardS3, startServer } from './lib.mjs';
import { VARIANTS, variantEnv } from './variants.mjs';

const variant = String(cliArg('variant', 'service'));
const clients = Number(cliArg('clients', 64));
const count = Number(cliArg('count', 0));
const sizeArg = String(cliArg('size', count ? '1GiB' : '64KiB'));
const size = Number(sizeArg.replace(/(KiB|MiB|GiB)$/, '')) * { KiB: 1024, MiB, GiB: 1024 * MiB }[sizeArg.slice(-3)];
const durationMs = Number(cliArg('duration-ms', 4000));
const rate = cliArg('rate', undefined);
const everyMs = Number(cliArg('every-ms', 100));
const delayMs = Number(cliArg('delay-ms', 10));
const extraEnv = Object.fromEntries(
  String(cliArg('env', ''))
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);
const nodeArgsArg = cliArg('node-args', undefined);
const name = cliArg('name', undefined);
if (!Number.isFinite(size) || size <= 0) throw new Error(`--size: expected e.g. 64KiB, 1MiB, 1GiB; got ${sizeArg}`);

const v = VARIANTS[variant];
if (!v) throw new Error(`--variant: unknown ${JSON.stringify(variant)} (known: ${Object.keys(VARIANTS).join(', ')})`);
const { bundles, src } = await buildBundles([v.bundle], cliArg('src', undefined));
const discard = await startDiscardS3([`--delay-ms=${count ? 0 : delayMs}`]);
const server = await startServer(
  bundles[v.bundle],
  {
    ...discard.env,
    ...variantEnv(variant, { discard: true }),
    ...extraEnv,
  },
  { name: variant, nodeArgs: nodeArgsArg ? String(nodeArgsArg).split(/\s+/) : (v.nodeArgs ?? []) },
);

function procStatus(pid) {
  const out = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(VmRSS|VmHWM|RssAnon|RssFile|RssShmem):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]) / 1024;
  }
  return out;
}

const METRICS = {
  heapTotal: /^nodejs_heap_size_total_bytes (\S+)/m,
  heapUsed: /^nodejs_heap_size_used_bytes (\S+)/m,
  external: /^nodejs_external_memory_bytes (\S+)/m,
  budgetInUse: /^s3_stream_upload_memory_budget_in_use_bytes (\S+)/m,
};
async function heap(url) {
  if (!v.bundle.startsWith('service')) return {};
  try {
    const text = await (await globalThis.fetch(`${url}/metrics`)).text();
    const out = {};
    for (const [k, re] of Object.entries(METRICS)) {
      const m = re.exec(text);
      if (m) out[k] = Number(m[1]) / MiB;
    }
    for (const m of text.matchAll(/^nodejs_heap_space_size_(total|used)_bytes\{space="(\w+)"\} (\S+)/gm))
      out[`${m[2]}.${m[1]}`] = Number(m[3]) / MiB;
    return out;
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
}

// Anonymous memory by mapping, from /proc/PID/smaps: glibc's main heap ([heap]: small and
// mid-size malloc, external buffers among them), 256 KiB mappings (V8's heap pages) and the rest
// (large mmapped buffers such as part buffers, thread arenas, stacks).
function smaps(pid) {
  const out = { 'smaps.heap': 0, 'smaps.v8pages': 0, 'smaps.otherAnon': 0 };
  let kind;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const [, from, to, inode, name] = head;
      const kib = (parseInt(to, 16) - parseInt(from, 16)) / 1024;
      kind =
        name === '[heap]' ? 'smaps.heap' : inode !== '0' || name ? undefined : kib === 256 ? 'smaps.v8pages' : 'smaps.otherAnon';
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && kind) out[kind] += Number(rss[1]) / 1024;
  }
  return out;
}

const samples = [];
async function sample(phase) {
  const s = { t: Date.now(), phase, ...procStatus(server.pid), ...smaps(server.pid), ...(await heap(server.url)) };
  samples.push(s);
  return s;
}

try {
  const url = `${server.url}/uploads`;
  if (count) await runClient({ url, count: 1, size: 16 * MiB + 1, timeoutMs: 60_000 });
  else await runSmallClient({ url, clients: 1, size, durationMs: 500 });
  const idle = await sample('idle');
  const cpu0 = cpuSeconds(server.pid);
  let running = true;
  const load = (
    count
      ? runClient({ url, count, size, timeoutMs: 600_000 })
      : runSmallClient({ url, clients, size, durationMs, ...(rate ? { rate: Number(rate) } : {}) })
  ).finally(() => (running = false));
  while (running) {
    await sample('load');
    await sleep(everyMs);
  }
  const result = await load;
  const cpuS = cpuSeconds(server.pid) - cpu0;
  const after = await sample('after');
  const loadSamples = samples.filter((s) => s.phase === 'load');
  const atPeak = loadSamples.reduce((a, b) => ((b.VmRSS ?? 0) > (a.VmRSS ?? 0) ? b : a), loadSamples[0] ?? after);
  const keys = [...new Set(samples.flatMap((s) => Object.keys(s)))].filter((k) => k !== 't' && k !== 'phase');
  const max = Object.fromEntries(keys.map((k) => [k, Math.max(...samples.map((s) => s[k] ?? -Infinity))]));
  const f = (x) => (typeof x === 'number' ? x.toFixed(1) : String(x ?? ''));
  console.log(
    `${variant}: ${count ? `${count} x ${sizeArg}` : `${clients} clients x ${sizeArg}`}, ${loadSamples.length} samples; src ${src.commit}`,
  );
  console.log(
    `load: ${JSON.stringify({ ok: result.ok, reqPerS: result.reqPerS, seconds: result.seconds, error: result.error })}; server CPU ${cpuS.toFixed(2)} s` +
      (count
        ? ` (${(cpuS / ((count * size) / 1e9)).toFixed(2)} s/GB)`
        : ` (${((cpuS * 1000) / result.ok).toFixed(2)} ms/request)`),
  );
  console.log(['figure (MiB)', 'idle', 'at peak RSS', 'max', 'after'].join('\t'));
  for (const k of keys) console.log([k, f(idle[k]), f(atPeak[k]), f(max[k]), f(after[k])].join('\t'));
  const file = path.join(ROOT, `bench/results/rss-breakdown${name ? `-${name}` : ''}.json`);
  await writeFile(
    file,
    JSON.stringify(
      {
        date: new Date().toISOString(),
        argv: process.argv.slice(2),
        src,
        loadAverage: loadAverage(),
        result,
        serverCpuSeconds: cpuS,
        idle,
        atPeak,
        max,
        samples,
      },
      null,
      1,
    ),
  );
  console.log(`wrote ${path.relative(ROOT, file)}`);
} finally {
  await server.stop(10_000);
  await discard.stop();
}
