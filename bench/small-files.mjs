// Small files, many at once: req/s and latency of keep-alive clients each posting one small
// file per request, the service against the naive server in the same run, with the discard S3
// answering every request after a delay (a round trip to a region).
//
//   npm run bench:small                 full: 64 KiB and 1 MiB x 1, 16, 64, 256 clients, 3 rounds (~6 min)
//   npm run bench:small -- --quick      64 KiB x 16, 64 clients, 2 rounds (under a minute)
//   options: --delay-ms=10 --rounds=N --duration-ms=N --only=service,naive --src=REV --name=x
//            --sizes=64KiB,1MiB --clients=16,64 (a slice of the matrix)
//
// Each run starts the server fresh, warms it up (one client for 0.5 s), reads its idle RSS,
// then applies the load; peak RSS is VmHWM. Variants alternate round by round (the order flips
// every round) so drift hits both alike; figures are medians, ratios are taken within a round.
// S3 requests per upload are counted at the discard S3 (every S3 call but the bench's own).
//
// Writes bench/results/small-files[-quick|-x].{json,md} and chart-small-files[...].svg.
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildBundles } from './build.mjs';
import {
  GiB,
  MiB,
  ROOT,
  cpuSeconds,
  loadAverage,
  median,
  memoryKiB,
  runSmallClient,
  startDiscardS3,
  startServer,
  cliArg,
  NODE_VERSION,
  parseSize,
} from './lib.mjs';
import { SERVICE_NOTE, VARIANTS, variantEnv } from './variants.mjs';

const argv = process.argv.slice(2);
const arg = (name, def) => cliArg(name, def, argv);
const quick = arg('quick', false) === true;
const delayMs = Number(arg('delay-ms', 10));
const rounds = Number(arg('rounds', quick ? 2 : 3));
const durationMs = Number(arg('duration-ms', quick ? 2500 : 4000));
const variants = String(arg('only', 'service,naive')).split(',');
const srcRev = arg('src', undefined);
const name = arg('name', quick ? 'quick' : undefined);
const KiB = 1024;
const SIZES = arg('sizes', undefined) ? String(arg('sizes')).split(',').map(parseSize) : quick ? [64 * KiB] : [64 * KiB, MiB];
const CLIENTS = arg('clients', undefined) ? String(arg('clients')).split(',').map(Number) : quick ? [16, 64] : [1, 16, 64, 256];
const S3_OPS = ['creates', 'parts', 'completes', 'aborts', 'puts', 'heads', 'deletes'];

const { bundles, src } = await buildBundles([...new Set(variants.map((v) => VARIANTS[v].bundle))], srcRev);
const discard = await startDiscardS3([`--delay-ms=${delayMs}`]);
console.log(
  `small files: sizes ${SIZES.map((s) => `${s / KiB} KiB`).join(', ')} x clients ${CLIENTS.join(', ')}, ${rounds} rounds of ` +
    `${durationMs} ms, S3 answering after ${delayMs} ms; variants ${variants.join(', ')}; src ${src.commit}`,
);

const started = Date.now();
const meta = {
  date: new Date().toISOString(),
  command: `npm run bench:small${argv.length ? ` -- ${argv.join(' ')}` : ''}`,
  node: NODE_VERSION,
  machine: `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM`,
  src,
  delayMs,
  durationMs,
  loadAverageStart: loadAverage(),
  notes: [
    'Keep-alive clients, one connection each, one file per request; req/s counts 2xx answers over the wall time of the load.',
    'Peak RSS is VmHWM of a fresh server after a 0.5 s warm-up and the load; idle RSS is VmRSS after the warm-up.',
    SERVICE_NOTE,
  ],
};

const cells = [];
async function measure(size, clients, variant, round) {
  const server = await startServer(
    bundles[VARIANTS[variant].bundle],
    { ...discard.env, ...variantEnv(variant, { discard: true }) },
    {
      name: variant,
      nodeArgs: VARIANTS[variant].nodeArgs ?? [],
    },
  );
  try {
    const url = `${server.url}/uploads`;
    const warm = await runSmallClient({ url, clients: 1, size, durationMs: 500 });
    if (!warm.ok) throw new Error(`warm-up failed: ${warm.error}`);
    const idleMiB = memoryKiB(server.pid).rss / 1024;
    const before = await discard.stats();
    const cpu0 = cpuSeconds(server.pid);
    const load0 = loadAverage();
    const r = await runSmallClient({ url, clients, size, durationMs });
    const cpu1 = cpuSeconds(server.pid);
    const peakMiB = memoryKiB(server.pid).hwm / 1024;
    const after = await discard.stats();
    const s3Requests = S3_OPS.reduce((n, op) => n + (after[op] - before[op]), 0);
    return {
      variant,
      round,
      size,
      clients,
      ok: r.ok,
      requests: r.requests,
      reqPerS: r.reqPerS,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      statuses: r.statuses,
      idleMiB,
      peakMiB,
      peakOverIdleMiB: peakMiB - idleMiB,
      s3RequestsPerUpload: r.ok ? s3Requests / r.ok : undefined,
      s3Ops: Object.fromEntries(S3_OPS.map((op) => [op, after[op] - before[op]])),
      serverCpuMsPerReq: r.ok ? ((cpu1 - cpu0) * 1000) / r.ok : undefined,
      loadAverage: [load0, loadAverage()],
      ...(r.error ? { error: r.error } : {}),
    };
  } finally {
    await server.stop(10_000);
  }
}

try {
  for (const size of SIZES) {
    for (const clients of CLIENTS) {
      const runs = [];
      for (let round = 1; round <= rounds; round++) {
        const order = round % 2 ? variants : [...variants].reverse();
        for (const variant of order) {
          let run;
          try {
            run = await measure(size, clients, variant, round);
          } catch (err) {
            run = { variant, round, size, clients, ok: 0, error: String(err?.message ?? err).slice(0, 300) };
          }
          runs.push(run);
          console.log(
            `  ${String(size / KiB).padStart(5)} KiB x ${String(clients).padStart(3)} r${round} ${variant.padEnd(8)} ` +
              `${run.reqPerS?.toFixed(0) ?? '-'} req/s, p50 ${run.p50Ms?.toFixed(1) ?? '-'} ms, p99 ${run.p99Ms?.toFixed(1) ?? '-'} ms, ` +
              `S3 req/upload ${run.s3RequestsPerUpload?.toFixed(2) ?? '-'}, RSS ${run.idleMiB?.toFixed(0) ?? '-'} -> ${run.peakMiB?.toFixed(0) ?? '-'} MiB, ` +
              `CPU ${run.serverCpuMsPerReq?.toFixed(2) ?? '-'} ms/req, load ${run.loadAverage?.[0] ?? '-'}` +
              (run.error ? ` (${run.error})` : ''),
          );
        }
      }
      cells.push({ size, clients, runs });
    }
  }
} finally {
  await discard.stop();
}
meta.seconds = Math.round((Date.now() - started) / 1000);
meta.loadAverageEnd = loadAverage();

const FIELDS = ['reqPerS', 'p50Ms', 'p99Ms', 's3RequestsPerUpload', 'idleMiB', 'peakMiB', 'peakOverIdleMiB', 'serverCpuMsPerReq'];
for (const cell of cells) {
  cell.summary = {};
  for (const v of variants) {
    const runs = cell.runs.filter((r) => r.variant === v);
    cell.summary[v] = Object.fromEntries(FIELDS.map((f) => [f, median(runs.map((r) => r[f]))]));
    cell.summary[v].failed = runs.filter((r) => r.error).length;
  }
  if (variants.includes('service') && variants.includes('naive')) {
    const per = (f) =>
      median(
        Array.from({ length: rounds }, (_, i) => {
          const a = cell.runs.find((r) => r.variant === 'service' && r.round === i + 1)?.[f];
          const b = cell.runs.find((r) => r.variant === 'naive' && r.round === i + 1)?.[f];
          return a !== undefined && b ? a / b : undefined;
        }),
      );
    cell.ratios = { reqPerS: per('reqPerS'), p99Ms: per('p99Ms') };
  }
}

const cellOf = (size, clients) => cells.find((c) => c.size === size && c.clients === clients);
const targets = [];
for (const clients of [16, 64]) {
  const c = cellOf(64 * KiB, clients);
  if (!c?.ratios) continue;
  targets.push({
    target: `64 KiB x ${clients} clients: req/s >= 1.0x naive`,
    value: `${c.ratios.reqPerS?.toFixed(2)}x (medians ${c.summary.service.reqPerS?.toFixed(0)} vs ${c.summary.naive.reqPerS?.toFixed(0)} req/s)`,
    pass: c.ratios.reqPerS >= 1,
  });
  targets.push({
    target: `64 KiB x ${clients} clients: p99 <= 1.2x naive's`,
    value: `${c.ratios.p99Ms?.toFixed(2)}x (medians ${c.summary.service.p99Ms?.toFixed(1)} vs ${c.summary.naive.p99Ms?.toFixed(1)} ms)`,
    pass: c.ratios.p99Ms <= 1.2,
  });
}
const s3PerFile = cells.filter((c) => c.summary.service).map((c) => c.summary.service.s3RequestsPerUpload);
if (s3PerFile.length)
  targets.push({
    target: '1 S3 request per file under one part',
    value: `${Math.max(...s3PerFile).toFixed(2)} at most (all cells)`,
    pass: Math.max(...s3PerFile) <= 1.0001,
  });
const c64 = cellOf(64 * KiB, 64);
if (c64?.summary.service)
  targets.push({
    target: 'peak RSS under 64 clients of 64 KiB <= idle + 48 MiB',
    value: `+${c64.summary.service.peakOverIdleMiB.toFixed(1)} MiB (${c64.summary.service.idleMiB.toFixed(0)} -> ${c64.summary.service.peakMiB.toFixed(0)} MiB)`,
    pass: c64.summary.service.peakOverIdleMiB <= 48,
  });

const suffix = name ? `-${name}` : '';
const outDir = path.join(ROOT, 'bench/results');
await writeFile(path.join(outDir, `small-files${suffix}.json`), JSON.stringify({ meta, cells, targets }, null, 2) + '\n');
const f = (x, d = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(d));
let md = `# Small files, many at once${quick ? ' (quick)' : ''}\n\n`;
md += `\`${meta.command}\` — ${meta.date}, Node ${meta.node}, ${meta.machine}; src ${src.commit}. ${meta.seconds} s; `;
md += `load average ${meta.loadAverageStart} at start, ${meta.loadAverageEnd} at end (a shared, loaded machine: read the ratios). `;
md += `Discard S3 answering after ${delayMs} ms; ${rounds} rounds of ${durationMs} ms per cell, variants alternated.\n\n`;
md += meta.notes.map((n) => `- ${n}`).join('\n') + '\n\n';
md += `| file | clients | variant | req/s | p50 ms | p99 ms | S3 req/upload | idle → peak RSS MiB | server CPU ms/req |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|\n`;
for (const c of cells)
  for (const v of variants) {
    const s = c.summary[v];
    md += `| ${c.size / KiB} KiB | ${c.clients} | ${v} | ${f(s.reqPerS)} | ${f(s.p50Ms, 1)} | ${f(s.p99Ms, 1)} | ${f(s.s3RequestsPerUpload, 2)} | ${f(s.idleMiB)} → ${f(s.peakMiB)} | ${f(s.serverCpuMsPerReq, 2)} |\n`;
  }
if (cells.some((c) => c.ratios)) {
  md += `\n| file | clients | service/naive req/s | service/naive p99 |\n|---:|---:|---:|---:|\n`;
  for (const c of cells)
    if (c.ratios) md += `| ${c.size / KiB} KiB | ${c.clients} | ${f(c.ratios.reqPerS, 2)}x | ${f(c.ratios.p99Ms, 2)}x |\n`;
}
if (targets.length) {
  md += `\n## Targets\n\n| target | measured | met |\n|---|---|---|\n`;
  for (const t of targets) md += `| ${t.target} | ${t.value} | ${t.pass ? 'met' : '**not met**'} |\n`;
}
md += `\nChart: [chart-small-files${suffix}.svg](chart-small-files${suffix}.svg). Raw runs: [small-files${suffix}.json](small-files${suffix}.json).\n`;
await writeFile(path.join(outDir, `small-files${suffix}.md`), md);
await writeFile(path.join(outDir, `chart-small-files${suffix}.svg`), chart());
console.log(`\n${md}\nwrote bench/results/small-files${suffix}.{json,md}, chart-small-files${suffix}.svg`);

/** req/s against concurrency (log-spaced categories), one line per variant and file size. */
function chart() {
  const W = 640;
  const H = 320;
  const M = { left: 60, right: 150, top: 30, bottom: 40 };
  const colors = { service: '#43a047', naive: '#e53935', proxy: '#1e88e5' };
  const series = [];
  for (const size of SIZES)
    for (const v of variants)
      series.push({
        label: `${v}, ${size / KiB} KiB`,
        color: colors[v] ?? '#616161',
        dash: size === SIZES[0] ? '' : '6 4',
        points: CLIENTS.map((n) => cellOf(size, n)?.summary[v]?.reqPerS),
      });
  const max = Math.max(1, ...series.flatMap((s) => s.points.filter((p) => p !== undefined)));
  const top = 10 ** Math.ceil(Math.log10(max)) / (max * 2 < 10 ** Math.ceil(Math.log10(max)) ? 2 : 1);
  const x = (i) => M.left + ((W - M.left - M.right) * (i + 0.5)) / CLIENTS.length;
  const y = (v) => H - M.bottom - ((H - M.top - M.bottom) * v) / top;
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`;
  svg += `<rect width="${W}" height="${H}" fill="white"/><text x="${M.left}" y="18" font-weight="bold">req/s against concurrent clients (S3 ${delayMs} ms away)</text>`;
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    svg += `<line x1="${M.left}" x2="${W - M.right}" y1="${y(v)}" y2="${y(v)}" stroke="#eee"/><text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end">${v.toFixed(0)}</text>`;
  }
  CLIENTS.forEach((n, i) => (svg += `<text x="${x(i)}" y="${H - M.bottom + 16}" text-anchor="middle">${n}</text>`));
  svg += `<text x="${(W - M.right + M.left) / 2}" y="${H - 6}" text-anchor="middle">clients (keep-alive, one file per request)</text>`;
  series.forEach((s, j) => {
    const pts = s.points.map((p, i) => (p === undefined ? undefined : `${x(i)},${y(p)}`)).filter(Boolean);
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}" points="${pts.join(' ')}"/>`;
    for (const p of pts) svg += `<circle cx="${p.split(',')[0]}" cy="${p.split(',')[1]}" r="3" fill="${s.color}"/>`;
    svg += `<line x1="${W - M.right + 10}" x2="${W - M.right + 30}" y1="${M.top + 16 * j}" y2="${M.top + 16 * j}" stroke="${s.color}" stroke-width="2" stroke-dasharray="${s.dash}"/>`;
    svg += `<text x="${W - M.right + 34}" y="${M.top + 16 * j + 4}">${s.label}</text>`;
  });
  return svg + '</svg>\n';
}
