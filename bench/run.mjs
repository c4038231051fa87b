// Throughput and peak memory of the upload service against its baselines, on loopback.
//
//   npm run bench                 full matrix (about 18 min; the estimate is printed first)
//   npm run bench:quick           reduced matrix, under 2 minutes
//   npm run bench -- --src=HEAD   measure src/ as committed (others may be editing the tree)
//   npm run bench -- --dry-run    print the plan and the time estimate, run nothing
//
// Options: --runs=N (runs per cell), --only=v1,v2 (variants), --scenarios=id1,id2,
// --real=auto|radosgw|s3rver|none (the real S3 of part b), --max-minutes=N (stop scheduling
// runs past this; cells left are reported as skipped), --name=x (write results-x.*, chart-x.svg),
// --add=v1,v2 (variants added to every selected scenario, e.g. service-semi4 to the large files).
//
// Variants (bench/variants.mjs): the baselines raw, busboy, naive, buffered; `service`, this
// service as `npm start` runs it (its node flags, read from package.json; default settings),
// and `service-sha256`, `service-nogc`: one setting changed each; `proxy`, the proxy ceiling.
//
// Every server variant is an esbuild bundle (bench/build.mjs) started fresh for each run in its
// own process; the load client (bench/load-client.mjs) and the S3 (bench/discard-s3.mjs, or
// radosgw/s3rver) are processes of their own, so the server's peak RSS is read alone from the
// OS (/proc/<pid>/status VmHWM). All of them share this machine's cores. Each run: start the
// server, one warm-up upload of 16 MiB + 1 B, then the measured load; throughput is file bytes
// stored / wall time of the load (MB = 10^6 bytes). Variants are interleaved round by round so
// drift hits all alike, each figure is the median of the runs, and every ratio is computed
// within a round (pair by pair) before its median is taken.
//
// Writes bench/results/results.{json,md} and chart.svg (--quick: results-quick.*, chart-quick.svg;
// --name=x: results-x.*, chart-x.svg).
import { execFileSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { buildBundles } from './build.mjs';
import { renderChart } from './chart.mjs';
import {
  GiB,
  MiB,
  ROOT,
  cpuSeconds,
  formatBytes,
  loadAverage,
  median,
  memoryKiB,
  runClient,
  startDiscardS3,
  startS3rverChild,
  startServer,
  cliArg,
  NODE_VERSION,
} from './lib.mjs';
import { SERVICE_NODE_ARGS, SERVICE_NOTE, VARIANTS, variantEnv } from './variants.mjs';

// Web globals of Node, named for the linter (its config lists only a few Node globals).
const { fetch, AbortSignal } = globalThis;

const argv = process.argv.slice(2);
const arg = (name, def) => cliArg(name, def, argv);
const quick = arg('quick', false) === true;
const dryRun = arg('dry-run', false) === true;
const srcRev = arg('src', undefined);
const onlyVariants = arg('only', undefined)?.split(',');
const onlyScenarios = arg('scenarios', undefined)?.split(',');
const addVariants = arg('add', undefined)?.split(',') ?? [];
const realMode = arg('real', quick ? 'none' : 'auto');
const maxMinutes = Number(arg('max-minutes', quick ? 1.75 : 25));
const runsArg = arg('runs', undefined);
/** Suffix of the output files (results-<name>.*), so a partial run does not replace the full one. */
const outName = arg('name', quick ? 'quick' : undefined);

// Server variants: bench/variants.mjs.
const BASELINES = ['raw', 'busboy', 'naive', 'buffered'];
// Buffered is left out where it would hold the file(s) twice over in RAM (4 GiB: ~8 GiB;
// 10 x 1 GiB: ~20 GiB of a 24 GiB machine shared with others): its memory grows with the
// file, which the 64 MiB, 1 GiB and 100 x 8 MiB cells already show.
const ALL = [...BASELINES, 'service'];
const NO_BUFFERED = ['raw', 'busboy', 'naive', 'service'];
// One knob of the service changed at a time: UPLOAD_GC_EVERY_BYTES=0 (and UPLOAD_SHA256=always,
// in the 64 MiB and 1 GiB cells only, to keep the run short).
const KNOBS = ['service-nogc'];
const S3_ONLY = ['naive', 'buffered', 'service'];

const FULL = [
  { id: 'single-64MiB', group: 'size', count: 1, size: 64 * MiB, variants: [...ALL, 'service-sha256', ...KNOBS], runs: 5 },
  { id: 'single-1GiB', group: 'size', count: 1, size: GiB, variants: [...ALL, 'proxy', 'service-sha256', ...KNOBS], runs: 5 },
  { id: 'single-4GiB', group: 'size', count: 1, size: 4 * GiB, variants: [...NO_BUFFERED, ...KNOBS], runs: 3 },
  {
    id: 'conc-10x1GiB',
    group: 'concurrency',
    count: 10,
    size: GiB,
    // proxy: what a server that resends the bytes and holds none of them takes at once.
    variants: ['busboy', 'naive', 'proxy', 'service', ...KNOBS],
    runs: 3,
  },
  { id: 'conc-100x8MiB', group: 'concurrency', count: 100, size: 8 * MiB, variants: ALL, runs: 3 },
  // Part (b): a real S3. radosgw's memstore holds 3 GiB at most: single files up to 1 GiB, each
  // deleted (and garbage-collected) after its run.
  { id: 'real-single-64MiB', group: 'real', real: true, count: 1, size: 64 * MiB, variants: S3_ONLY, runs: 3 },
  { id: 'real-single-1GiB', group: 'real', real: true, count: 1, size: GiB, variants: S3_ONLY, runs: 3 },
];
const QUICK = [
  { id: 'single-64MiB', group: 'size', count: 1, size: 64 * MiB, variants: ALL, runs: 3 },
  { id: 'single-1GiB', group: 'size', count: 1, size: GiB, variants: [...NO_BUFFERED, 'proxy'], runs: 2 },
  { id: 'conc-10x32MiB', group: 'concurrency', count: 10, size: 32 * MiB, variants: ['naive', 'service'], runs: 1 },
];

let scenarios = (quick ? QUICK : FULL).map((s) => ({
  ...s,
  runs: runsArg ? Number(runsArg) : s.runs,
  variants: [
    ...s.variants.filter((v) => !onlyVariants || onlyVariants.includes(v)),
    ...addVariants.filter((v) => !s.variants.includes(v)),
  ],
}));
if (onlyScenarios) scenarios = scenarios.filter((s) => onlyScenarios.includes(s.id));
if (scenarios.length === 0 || scenarios.every((s) => s.variants.length === 0)) {
  console.error('nothing to run (check --scenarios and --only); no results written');
  process.exit(2);
}

// ---------------------------------------------------------------------------------------
// The real S3 of part (b).

const RGW = {
  endpoint: 'http://127.0.0.1:7480',
  // The S3 user scripts/ceph.sh creates.
  credentials: { accessKeyId: 'TESTACCESSKEY0000000', secretAccessKey: 'testsecretkey0000000000000000000000000000' },
};

async function rgwAnswers() {
  try {
    const res = await fetch(`${RGW.endpoint}/`, { signal: AbortSignal.timeout(2000) });
    return res.ok && (await res.text()).includes('ListAllMyBucketsResult');
  } catch {
    return false;
  }
}

/** Starts the real S3 for part (b); undefined when none is wanted or none is available. */
async function startRealS3() {
  if (realMode === 'none') return undefined;
  if (realMode !== 's3rver' && (await rgwAnswers())) {
    const bucket = `bench-${Date.now().toString(36)}`;
    const client = new S3Client({
      endpoint: RGW.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: RGW.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
    });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    return {
      kind: 'radosgw',
      endpoint: RGW.endpoint,
      bucket,
      credentials: RGW.credentials,
      client,
      pid: undefined,
      async clean() {
        await emptyBucket(client, bucket);
        // Deleted data and aborted parts stay in the memstore OSD's RAM until radosgw's garbage
        // collector runs: run it now so the next gigabyte fits.
        try {
          execFileSync('radosgw-admin', ['-n', 'client.admin', 'gc', 'process', '--include-all'], {
            env: { ...process.env, CEPH_CONF: path.join(ROOT, '.ceph/ceph.conf') },
            timeout: 60_000,
            stdio: 'ignore',
          });
        } catch {
          // Not fatal: GC also runs every 30 s (scripts/ceph.sh).
        }
      },
      async stop() {
        await emptyBucket(client, bucket);
        await client.send(new DeleteBucketCommand({ Bucket: bucket })).catch(() => {});
        client.destroy();
      },
    };
  }
  if (realMode === 'radosgw')
    throw new Error('--real=radosgw but nothing answers on 127.0.0.1:7480 (bash scripts/ceph.sh start)');
  const dir = path.join(ROOT, 'bench/results/tmp/s3rver-data');
  await rm(dir, { recursive: true, force: true });
  const s3 = await startS3rverChild(dir, 'bench');
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
  });
  return {
    kind: 's3rver',
    endpoint: s3.endpoint,
    bucket: 'bench',
    credentials,
    client,
    pid: s3.pid,
    clean: () => emptyBucket(client, 'bench', false),
    async stop() {
      client.destroy();
      await s3.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function emptyBucket(client, bucket, multipart = true) {
  for (let i = 0; i < 100; i++) {
    const list = await client.send(new ListObjectsV2Command({ Bucket: bucket, MaxKeys: 1000 }));
    const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key }));
    if (keys.length === 0) break;
    await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
  if (!multipart) return;
  const open = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const u of open.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId })).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------
// Plan and estimate.

/** Rough MB/s per variant on this machine kind, for the time estimate only. */
const GUESS_MBPS = {
  raw: 1500,
  busboy: 1000,
  naive: 250,
  buffered: 200,
  service: 420,
  'service-sha256': 330,
  'service-nogc': 400,
  proxy: 550,
};
const REAL_GUESS_MBPS = 120;
const RUN_OVERHEAD_S = 1.5;
function estimateSeconds(s) {
  const bytes = s.count * s.size;
  const guess = (v) => GUESS_MBPS[v] ?? (v.startsWith('service') ? GUESS_MBPS.service : GUESS_MBPS.naive);
  return s.variants.reduce((t, v) => t + s.runs * (RUN_OVERHEAD_S + bytes / 1e6 / (s.real ? REAL_GUESS_MBPS : guess(v))), 0);
}
const estimate = scenarios.reduce((t, s) => t + estimateSeconds(s), 0);
const deadline = Date.now() + maxMinutes * 60_000;

const git = (...a) => {
  try {
    return execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
};

console.log(
  `bench ${quick ? '--quick' : '(full)'}: ${scenarios.length} scenarios, ${scenarios.reduce((n, s) => n + s.variants.length * s.runs, 0)} runs; ` +
    `estimated ${(estimate / 60).toFixed(1)} min (stops scheduling after ${maxMinutes} min)`,
);
console.log(`service node flags (npm start): ${SERVICE_NODE_ARGS.join(' ') || 'none'}`);
if (dryRun) {
  for (const s of scenarios)
    console.log(`  ${s.id.padEnd(18)} ${s.runs} x [${s.variants.join(', ')}]  ~${(estimateSeconds(s) / 60).toFixed(1)} min`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------
// Run.

const bundleNames = [...new Set(scenarios.flatMap((s) => s.variants.map((v) => VARIANTS[v].bundle)))];
const { bundles, src } = await buildBundles(bundleNames, srcRev);
console.log(`src: ${src.commit}${srcRev ? ` (${srcRev})` : ''}`);

const meta = {
  date: new Date().toISOString(),
  command: `npm run ${quick ? 'bench:quick' : 'bench'}${argv.filter((a) => a !== '--quick').length ? ` -- ${argv.filter((a) => a !== '--quick').join(' ')}` : ''}`,
  node: NODE_VERSION,
  machine: `${os.cpus()[0]?.model ?? 'unknown'} x${os.cpus().length}, ${(os.totalmem() / GiB).toFixed(0)} GiB RAM`,
  src: { ...src, head: git('rev-parse', 'HEAD'), dirty: git('status', '--porcelain', 'src')?.length ? true : false },
  estimateSeconds: Math.round(estimate),
  serviceNodeArgs: SERVICE_NODE_ARGS,
  loadAverageStart: loadAverage(),
  notes: [
    'All processes (client, server, S3) share the same cores; the load average of the machine (other work included) is recorded per run.',
    'Peak RSS is VmHWM of a fresh server process that served one 16 MiB + 1 B warm-up upload and then the measured load.',
    'MB/s = file bytes stored / wall time of the load, MB = 10^6 bytes; RSS in MiB.',
    SERVICE_NOTE,
  ],
};

const discard = await startDiscardS3();
const started = Date.now();
let real;
const results = [];

function s3EnvFor(scenario) {
  if (scenario.real) {
    return {
      S3_ENDPOINT: real.endpoint,
      UPLOAD_BUCKET: real.bucket,
      AWS_ACCESS_KEY_ID: real.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: real.credentials.secretAccessKey,
    };
  }
  return discard.env;
}

/** Observed MB/s per variant (median so far) replaces the guess once known. */
const paceMBps = {};
function expectedRunSeconds(scenario, variant) {
  const observed = median(paceMBps[variant] ?? []);
  const mbps = scenario.real ? Math.min(REAL_GUESS_MBPS, observed ?? Infinity) : (observed ?? GUESS_MBPS[variant]);
  return RUN_OVERHEAD_S + (scenario.count * scenario.size) / 1e6 / mbps;
}

async function measure(scenario, variant, round) {
  const v = VARIANTS[variant];
  const server = await startServer(
    bundles[v.bundle],
    { ...s3EnvFor(scenario), ...variantEnv(variant, { discard: !scenario.real }) },
    { name: variant, nodeArgs: v.nodeArgs ?? [] },
  );
  const url = `${server.url}/uploads`;
  try {
    const warm = await runClient({ url, count: 1, size: 16 * MiB + 1, timeoutMs: 120_000 });
    if (!warm.ok) throw new Error(`warm-up failed: ${warm.error}`);
    if (scenario.real) await real.clean();
    const sinkBefore = scenario.real ? undefined : await discard.stats();
    const cpu0 = { server: cpuSeconds(server.pid), sink: cpuSeconds(scenario.real ? real.pid : discard.pid) };
    const load0 = loadAverage();
    const bytes = scenario.count * scenario.size;
    const timeoutMs = Math.min(900_000, 60_000 + (bytes / 20e6) * 1000);
    const r = await runClient({ url, count: scenario.count, size: scenario.size, timeoutMs });
    const mem = memoryKiB(server.pid);
    const cpu1 = { server: cpuSeconds(server.pid), sink: cpuSeconds(scenario.real ? real.pid : discard.pid) };
    const sinkAfter = scenario.real ? undefined : await discard.stats();
    const storedBytes = r.okBytes ?? 0;
    const run = {
      variant,
      round,
      ok: r.ok === true,
      seconds: r.seconds,
      MBps: r.seconds ? storedBytes / 1e6 / r.seconds : undefined,
      hwmMiB: mem ? mem.hwm / 1024 : undefined,
      serverCpuS: cpu1.server - cpu0.server,
      serverCpuSPerGB: storedBytes ? (cpu1.server - cpu0.server) / (storedBytes / 1e9) : undefined,
      sinkCpuS: cpu1.sink !== undefined && cpu0.sink !== undefined ? cpu1.sink - cpu0.sink : undefined,
      clientCpuS: r.cpuSeconds,
      loadAverage: [load0, loadAverage()],
      statuses: r.statuses,
      ...(r.ok ? {} : { error: String(r.error).slice(0, 300) }),
    };
    if (sinkBefore && sinkAfter && v.s3) {
      run.sinkBytes = sinkAfter.bytes - sinkBefore.bytes;
      run.openUploads = sinkAfter.openUploads;
    }
    return run;
  } finally {
    await server.stop(10_000);
    if (scenario.real) await real.clean().catch(() => {});
  }
}

try {
  for (const scenario of scenarios) {
    const entry = { ...scenario, target: 'discard', runs: [], skipped: [] };
    if (scenario.real) {
      real ??= await startRealS3().catch((err) => {
        console.warn(`real S3 unavailable: ${err.message}`);
        return null;
      });
      if (!real) {
        entry.skipped.push('no real S3 (radosgw not answering and --real excludes s3rver, or it failed to start)');
        results.push(entry);
        continue;
      }
      entry.target = real.kind;
    }
    console.log(
      `\n## ${scenario.id} (${scenario.count} x ${formatBytes(scenario.size)} into ${entry.target}), ${scenario.runs} rounds`,
    );
    for (let round = 1; round <= scenario.runs; round++) {
      for (const variant of scenario.variants) {
        // Skip a run that would end past the budget, by this variant's pace so far.
        if (Date.now() + expectedRunSeconds(scenario, variant) * 1000 > deadline) {
          entry.skipped.push(`${variant} round ${round}: would end past the time budget (${maxMinutes} min)`);
          continue;
        }
        let run;
        try {
          run = await measure(scenario, variant, round);
        } catch (err) {
          run = { variant, round, ok: false, error: String(err?.message ?? err).slice(0, 300) };
        }
        entry.runs.push(run);
        if (run.MBps && !scenario.real) (paceMBps[variant] ??= []).push(run.MBps);
        console.log(
          `  r${round} ${variant.padEnd(14)} ${run.ok ? '' : `FAILED (${run.error}) `}` +
            `${run.MBps?.toFixed(0) ?? '-'} MB/s, peak RSS ${run.hwmMiB?.toFixed(0) ?? '-'} MiB, ` +
            `server CPU ${run.serverCpuSPerGB?.toFixed(2) ?? '-'} s/GB, load ${run.loadAverage?.[0] ?? '-'}` +
            (run.statuses && Object.keys(run.statuses).some((k) => k[0] !== '2')
              ? `, statuses ${JSON.stringify(run.statuses)}`
              : ''),
        );
      }
    }
    results.push(entry);
  }
} finally {
  await discard.stop();
  if (real) await real.stop().catch((err) => console.warn(`real S3 clean-up: ${err.message}`));
}
meta.seconds = Math.round((Date.now() - started) / 1000);
meta.loadAverageEnd = loadAverage();

// ---------------------------------------------------------------------------------------
// Summaries, ratios (pair by pair within a round), targets.

const stat = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x));
  if (!v.length) return undefined;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), n: v.length };
};

// The young-generation experiments (service-semiN), compared like the service.
const SEMI = Object.keys(VARIANTS).filter((v) => v.startsWith('service-semi'));
for (const entry of results) {
  entry.summary = {};
  for (const variant of entry.variants) {
    const runs = entry.runs.filter((r) => r.variant === variant);
    // A run with refused uploads still counts for memory; its throughput counts stored bytes.
    entry.summary[variant] = {
      MBps: stat(runs.map((r) => r.MBps)),
      hwmMiB: stat(runs.map((r) => r.hwmMiB)),
      serverCpuSPerGB: stat(runs.map((r) => r.serverCpuSPerGB)),
      failedRuns: runs.filter((r) => !r.ok).length,
      runs: runs.length,
    };
  }
  entry.ratios = {};
  const pairs = [
    ['service', 'busboy'],
    ['service', 'naive'],
    ['service', 'raw'],
    ['service', 'proxy'],
    ['service-sha256', 'service'],
    ['service-nogc', 'service'],
    ...SEMI.flatMap((v) => [
      [v, 'service'],
      [v, 'naive'],
      [v, 'proxy'],
    ]),
    ['naive', 'busboy'],
    ['busboy', 'raw'],
  ];
  for (const [a, b] of pairs) {
    if (!entry.variants.includes(a) || !entry.variants.includes(b)) continue;
    const per = (field) => {
      const values = [];
      for (let round = 1; round <= entry.runs.reduce((m, r) => Math.max(m, r.round), 0); round++) {
        const ra = entry.runs.find((r) => r.variant === a && r.round === round);
        const rb = entry.runs.find((r) => r.variant === b && r.round === round);
        if (ra?.[field] !== undefined && rb?.[field] !== undefined && rb[field] > 0) values.push(ra[field] / rb[field]);
      }
      return values.length ? { median: median(values), values: values.map((x) => +x.toFixed(3)) } : undefined;
    };
    entry.ratios[`${a}/${b}`] = { MBps: per('MBps'), hwmMiB: per('hwmMiB') };
  }
}

const byId = Object.fromEntries(results.map((e) => [e.id, e]));
const MB_IN_MIB = 1e6 / MiB;
/**
 * The issue's targets, on the discard S3. `pass` is undefined when this run did not measure
 * what a target needs (e.g. --quick has no 4 GiB and no 10 x 1 GiB cell).
 */
function targetsFor(v) {
  const t = [];
  const notMeasured = (target, needs) => t.push({ variant: v, target, value: `not measured (needs ${needs})`, pass: undefined });
  const mbps = (e, x) => e?.summary[x]?.MBps?.median;
  const hwm = (e, x) => e?.summary[x]?.hwmMiB?.median;
  const one = byId['single-1GiB'];
  for (const [base, min] of [
    ['proxy', 0.85],
    ['naive', 1.5],
  ]) {
    const target = `one 1 GiB upload >= ${min}x ${base === 'proxy' ? 'the proxy ceiling' : 'naive'}`;
    const r = one?.ratios[`${v}/${base}`]?.MBps;
    if (!r) notMeasured(target, `single-1GiB with ${v} and ${base}`);
    else
      t.push({
        variant: v,
        target,
        value: `${r.median.toFixed(2)}x (medians ${mbps(one, v)?.toFixed(0)} vs ${mbps(one, base)?.toFixed(0)} MB/s)`,
        pass: r.median >= min,
      });
  }
  const small = hwm(byId['single-64MiB'], v);
  const big = hwm(byId['single-4GiB'], v);
  if (small !== undefined && big !== undefined) {
    t.push({
      variant: v,
      target: 'peak RSS 4 GiB within 8 MiB of 64 MiB',
      value: `${big - small >= 0 ? '+' : ''}${(big - small).toFixed(1)} MiB (${small.toFixed(0)} -> ${big.toFixed(0)} MiB)`,
      pass: big - small <= 8,
    });
    t.push({
      variant: v,
      target: 'peak RSS 4 GiB under 120 MB (114.4 MiB)',
      value: `${big.toFixed(1)} MiB`,
      pass: big < 120 * MB_IN_MIB,
    });
  } else {
    notMeasured('peak RSS 4 GiB within 8 MiB of 64 MiB', `single-64MiB and single-4GiB with ${v}`);
    notMeasured('peak RSS 4 GiB under 120 MB (114.4 MiB)', `single-4GiB with ${v}`);
  }
  const conc = byId['conc-10x1GiB'];
  const m = conc?.ratios[`${v}/naive`]?.hwmMiB;
  const x = conc?.ratios[`${v}/naive`]?.MBps;
  if (m)
    t.push({
      variant: v,
      target: '10 x 1 GiB peak RSS <= 1/3 of naive',
      value: `${m.median.toFixed(2)}x (medians ${hwm(conc, v)?.toFixed(0)} vs ${hwm(conc, 'naive')?.toFixed(0)} MiB)`,
      pass: m.median <= 1 / 3,
    });
  else notMeasured('10 x 1 GiB peak RSS <= 1/3 of naive', `conc-10x1GiB with ${v} and naive`);
  if (x)
    t.push({
      variant: v,
      target: '10 x 1 GiB throughput >= naive',
      value: `${x.median.toFixed(2)}x (medians ${mbps(conc, v)?.toFixed(0)} vs ${mbps(conc, 'naive')?.toFixed(0)} MB/s)`,
      pass: x.median >= 1,
    });
  else notMeasured('10 x 1 GiB throughput >= naive', `conc-10x1GiB with ${v} and naive`);
  return t;
}
const targets = ['service', ...SEMI].filter((v) => results.some((e) => e.variants.includes(v))).flatMap((v) => targetsFor(v));

// ---------------------------------------------------------------------------------------
// Output.

const outDir = path.join(ROOT, 'bench/results');
await mkdir(outDir, { recursive: true });
const suffix = outName ? `-${outName}` : '';
const json = {
  meta,
  variants: Object.fromEntries(Object.entries(VARIANTS).map(([k, v]) => [k, v.label])),
  scenarios: results,
  targets,
};
await writeFile(path.join(outDir, `results${suffix}.json`), JSON.stringify(json, null, 2) + '\n');

const range = (s, digits = 0) => (s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})` : '–');
let md = `# Upload benchmarks${quick ? ' (quick)' : ''}\n\n`;
md += `\`${meta.command}\` — ${meta.date}, Node ${meta.node}, ${meta.machine}; src ${src.commit}${srcRev ? ` (${srcRev})` : ''}${meta.src.dirty && !srcRev ? ' with uncommitted changes' : ''}. `;
md += `${meta.seconds} s (estimated ${Math.round(estimate)} s). Load average ${meta.loadAverageStart} at start, ${meta.loadAverageEnd} at end.\n\n`;
md += meta.notes.map((n) => `- ${n}`).join('\n') + '\n\n';
md += `Variants:\n\n${Object.entries(json.variants)
  .map(([k, l]) => `- **${k}**: ${l}`)
  .join('\n')}\n\n`;
md += `## Results (median (min–max) of the runs)\n\n`;
md += `| scenario | S3 | variant | MB/s | peak RSS MiB | server CPU s/GB | runs | failed |\n|---|---|---|---:|---:|---:|---:|---:|\n`;
for (const e of results) {
  for (const v of e.variants) {
    const s = e.summary[v];
    md += `| ${e.id} | ${e.target} | ${v} | ${range(s.MBps)} | ${range(s.hwmMiB)} | ${range(s.serverCpuSPerGB, 2)} | ${s.runs} | ${s.failedRuns || ''} |\n`;
  }
  for (const why of e.skipped) md += `| ${e.id} | ${e.target} | skipped | ${why} | | | | |\n`;
}
md += `\n## Ratios (median of per-round ratios)\n\n| scenario | pair | throughput | peak RSS |\n|---|---|---:|---:|\n`;
for (const e of results) {
  for (const [pair, r] of Object.entries(e.ratios)) {
    md += `| ${e.id} | ${pair} | ${r.MBps ? `${r.MBps.median.toFixed(2)}x` : '–'} | ${r.hwmMiB ? `${r.hwmMiB.median.toFixed(2)}x` : '–'} |\n`;
  }
}
if (targets.length) {
  md += `\n## Targets (discard S3; ratios are medians of per-round ratios)\n\n| variant | target | measured | met |\n|---|---|---|---|\n`;
  for (const t of targets)
    md += `| ${t.variant} | ${t.target} | ${t.value} | ${t.pass === undefined ? '–' : t.pass ? 'met' : '**not met**'} |\n`;
}
const failures = results.flatMap((e) => e.runs.filter((r) => !r.ok).map((r) => `${e.id} ${r.variant} r${r.round}: ${r.error}`));
if (failures.length) md += `\n## Failed runs\n\n${failures.map((f) => `- ${f}`).join('\n')}\n`;
md += `\nChart: [chart${suffix}.svg](chart${suffix}.svg). Raw figures per run: [results${suffix}.json](results${suffix}.json).\n`;
await writeFile(path.join(outDir, `results${suffix}.md`), md);
await writeFile(path.join(outDir, `chart${suffix}.svg`), renderChart(json));
console.log(`\n${md}`);
console.log(`wrote bench/results/results${suffix}.{json,md}, chart${suffix}.svg`);
