// CPU profile of one server variant: its bundle runs under `node --cpu-prof` while the load
// client sends one large file into the discard S3; the profile is summarised by self time
// (top functions and categories) into bench/results/profile-<variant>.{json,md}. Variants:
// naive, service, service-sha256, started as in bench/run.mjs (bench/variants.mjs: the service
// with npm start's node flags and, on the discard S3, unsigned payload and CRC32 per part).
//
//   node bench/profile.mjs [--variant=naive|service|service-sha256] [--size=1GiB] [--src=HEAD] [--env=K=V,...] [--label=x]
//   node bench/profile.mjs --clients=16 --size=64KiB [--delay-ms=10] ...   small files: keep-alive clients for 5 s
//     (bench/small-client.mjs), CPU per request
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { buildBundles } from './build.mjs';
import { MiB, ROOT, parseSize, runClient, runSmallClient, startDiscardS3, startServer } from './lib.mjs';
import { SERVICE_NOTE, VARIANTS, variantEnv } from './variants.mjs';

const PROFILED = ['naive', 'service', 'service-sha256'];

const arg = (name, def) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const variant = arg('variant', 'service');
if (!PROFILED.includes(variant))
  throw new Error(`--variant must be one of ${PROFILED.join(', ')}, got ${JSON.stringify(variant)}`);
const { bundle: bundleName, nodeArgs = [] } = VARIANTS[variant];
const sizeArg = arg('size', '1GiB');
const size = parseSize(sizeArg);
const clients = Number(arg('clients', 0));
const delayMs = Number(arg('delay-ms', clients ? 10 : 0));
const srcRev = arg('src', undefined);
const label = arg('label', variant);
const extraEnv = Object.fromEntries(
  (arg('env', '') || '')
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

const { bundles: built, src } = await buildBundles([bundleName], srcRev);
const bundle = built[bundleName];
const env = { ...variantEnv(variant, { discard: true }), ...extraEnv };
const outDir = path.join(ROOT, 'bench/results/tmp/profiles', label);
await rm(outDir, { recursive: true, force: true });
await mkdir(outDir, { recursive: true });

const s3 = await startDiscardS3(delayMs ? [`--delay-ms=${delayMs}`] : []);
const server = await startServer(
  bundle,
  { ...s3.env, ...env },
  { nodeArgs: [...nodeArgs, '--cpu-prof', `--cpu-prof-dir=${outDir}`, '--cpu-prof-interval=500'] },
);
const url = `${server.url}/uploads`;
const warm = await runClient({ url, count: 1, size: 16 * MiB + 1, timeoutMs: 60_000 });
if (!warm.ok) throw new Error(`warm-up failed: ${warm.error}`);
// CLOCK_MONOTONIC, like the profile's timestamps: only samples taken during the run count.
const windowStartUs = Number(process.hrtime.bigint() / 1000n);
const run = clients
  ? await runSmallClient({ url, clients, size, durationMs: 5000 })
  : await runClient({ url, count: 1, size, timeoutMs: 300_000 });
const windowEndUs = Number(process.hrtime.bigint() / 1000n);
await server.stop(30_000);
await s3.stop();
if (!run.ok || (clients && run.ok < run.requests)) throw new Error(`run failed: ${run.error}`);

const file = (await readdir(outDir)).find((f) => f.endsWith('.cpuprofile'));
if (!file) throw new Error('no .cpuprofile written (did the server exit through process.exit?)');
const profile = JSON.parse(await readFile(path.join(outDir, file), 'utf8'));

// Self time per node, from the sample counts and time deltas.
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
let t = profile.startTime;
for (let i = 0; i < profile.samples.length; i++) {
  t += profile.timeDeltas[i] ?? 0;
  if (t < windowStartUs || t > windowEndUs) continue;
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
// Parent links, to attribute self time to the package / module a frame belongs to.
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

// Frames in the bundle are mapped back to their source file (node_modules package or src/).
const bundleUrl = `file://${bundle}`;
const sourceMap = new SourceMap(JSON.parse(await readFile(`${bundle}.map`, 'utf8')));
const mapsDir = path.dirname(bundle);
function originalOf(frame) {
  if (frame.url !== bundleUrl) return undefined;
  const e = sourceMap.findEntry(frame.lineNumber, frame.columnNumber);
  if (!e || !e.originalSource) return undefined;
  const src = path.resolve(mapsDir, e.originalSource.replace(/^file:\/\//, ''));
  return { url: src.replace(ROOT, ''), line: e.originalLine + 1 };
}
for (const n of profile.nodes) {
  const o = originalOf(n.callFrame);
  if (o) {
    n.callFrame.url = o.url;
    n.callFrame.lineNumber = o.line - 1;
  }
}

const shortUrl = (u) =>
  u
    .replace(/^file:\/\//, '')
    .replace(ROOT, '')
    .replace(/^bench\/results\/tmp\//, '');
const frameName = (n) =>
  `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;

// Categories (first match wins), on the frame and its callers, so native work is charged to
// the JS API that asked for it.
const CATEGORIES = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  [
    'hashing (SHA-256 signing, MD5, CRC)',
    (f) => /\b(update|digest)\b/.test(f.functionName) && /crypto|hash|checksum/i.test(f.url),
  ],
  ['hashing (SHA-256 signing, MD5, CRC)', (f) => /crc32|Crc32|Sha256|sha256|Hash\b/.test(f.functionName)],
  [
    'socket writes (writev/write)',
    (f) => /^(writev|writeBuffer|writeUtf8String|writevGeneric|writeGeneric|handleWriteReq)$/.test(f.functionName),
  ],
  [
    'buffer copies (concat/copy)',
    (f) => /^(concat|_copyActual|copy|copyImpl|set|from|allocUnsafe|alloc)$/.test(f.functionName) && /buffer/i.test(f.url),
  ],
  ['socket reads (onStreamRead)', (f) => f.functionName === 'onStreamRead'],
  ['multipart parsing (busboy/streamsearch)', (f) => /busboy|streamsearch/.test(f.url)],
  ['lib-storage chunker', (f) => /lib-storage/.test(f.url)],
  ['AWS SDK', (f) => /@aws-sdk|@smithy|@aws-crypto/.test(f.url)],
  ['service code (src/, bench/)', (f) => /^(src|bench)\//.test(f.url)],
  ['(program: native, not attributed)', (f) => f.functionName === '(program)'],
];
/** Who asked for a hash: the SDK's signer, the core's per-file SHA-256, or a checksum (node:zlib's crc32 itself). */
function hashCaller(id) {
  for (let cur = id, depth = 0; cur !== undefined && depth < 30; cur = parent.get(cur), depth++) {
    const { url, functionName } = byId.get(cur).callFrame;
    if (/signature-v4/.test(url) || /^(getPayloadHash|signRequest)$/.test(functionName))
      return 'hashing: SHA-256 payload signing (SDK signer)';
    if (/file-checks/.test(url)) return 'hashing: SHA-256 of each file (core, file-checks.ts)';
    if (/crc/i.test(functionName) || /crc32/i.test(url)) return 'hashing: CRC32 checksums';
  }
  return 'hashing: other';
}
function categoryOf(id) {
  // Walk up a few callers for native frames without a URL.
  for (let cur = id, depth = 0; cur !== undefined && depth < 4; cur = parent.get(cur), depth++) {
    const f = byId.get(cur).callFrame;
    for (const [name, test] of CATEGORIES) if (test(f)) return name.startsWith('hashing') ? hashCaller(cur) : name;
    if (f.url) break;
  }
  const url = byId.get(id).callFrame.url;
  if (/node:|^internal|^$/.test(url)) return 'node core (streams, http, events)';
  return 'other JS';
}

const fnSelf = new Map();
const catSelf = new Map();
for (const [id, us] of selfUs) {
  const n = byId.get(id);
  const key = frameName(n);
  fnSelf.set(key, (fnSelf.get(key) ?? 0) + us);
  const cat = categoryOf(id);
  catSelf.set(cat, (catSelf.get(cat) ?? 0) + us);
}
const pct = (us) => +((100 * us) / total).toFixed(1);
// Inclusive time of the service's own functions (src/): what each step of a request costs with
// everything it calls (SDK, streams, hashing), to find the step worth cutting.
const inclSrc = new Map();
for (const [id, us] of selfUs) {
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur).callFrame;
    if (!/^src\//.test(f.url)) continue;
    const key = frameName(byId.get(cur));
    if (seen.has(key)) continue;
    seen.add(key);
    inclSrc.set(key, (inclSrc.get(key) ?? 0) + us);
  }
}
const topSrc = [...inclSrc]
  .sort((a, b) => b[1] - a[1])
  .slice(0, 25)
  .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pct: pct(us) }));
const top = [...fnSelf]
  .sort((a, b) => b[1] - a[1])
  .slice(0, 25)
  .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pct: pct(us) }));
// Self time of the service's own functions: where its code (not what it calls) spends.
const srcSelf = [...fnSelf]
  .filter(([fn]) => / src\//.test(fn))
  .sort((a, b) => b[1] - a[1])
  .slice(0, 25)
  .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pct: pct(us) }));
const categories = [...catSelf]
  .sort((a, b) => b[1] - a[1])
  .map(([category, us]) => ({ category, ms: Math.round(us / 1000), pct: pct(us) }));

const result = {
  date: new Date().toISOString(),
  variant,
  label,
  windowUs: [windowStartUs, windowEndUs],
  srcSelf,
  src,
  env,
  nodeArgs,
  bytes: size,
  seconds: run.seconds,
  MBps: +(((clients ? run.ok : 1) * size) / 1e6 / run.seconds).toFixed(0),
  ...(clients ? { clients, requests: run.ok, reqPerS: +run.reqPerS.toFixed(0), cpuMsPerRequest: 0 } : {}),
  profileMs: Math.round(total / 1000),
  profile: path.relative(ROOT, path.join(outDir, file)),
  categories,
  top,
  topSrc,
};
await writeFile(path.join(ROOT, `bench/results/profile-${label}.json`), JSON.stringify(result, null, 2) + '\n');
const busyUs = categories.filter((c) => c.category !== 'idle').reduce((n, c) => n + c.ms * 1000, 0);
if (clients) result.cpuMsPerRequest = +(busyUs / 1000 / run.ok).toFixed(3);
const md =
  `# CPU profile: ${label} (${variant}), ${clients ? `${clients} clients x ` : ''}${sizeArg} into the discard S3\n\n` +
  (clients
    ? `${run.ok} requests in 5 s, ${result.reqPerS} req/s under the profiler, ${result.cpuMsPerRequest} ms of non-idle samples per request, S3 answering after ${delayMs} ms. `
    : '') +
  `${result.MBps} MB/s under the profiler (1 sample per 0.5 ms); ${result.profileMs} ms of server samples during the measured upload ` +
  `(start-up and warm-up excluded; idle = the server waiting for the client or the S3). ` +
  `src: ${src.commit}. Environment: ${JSON.stringify(env)}; node flags: ${nodeArgs.join(' ') || 'none'}.` +
  `${variant.startsWith('service') ? ` ${SERVICE_NOTE}` : ''}\n\n| category | ms | % |\n|---|---:|---:|\n` +
  categories.map((c) => `| ${c.category} | ${c.ms} | ${c.pct} |`).join('\n') +
  `\n\n| function (self time) | ms | % |\n|---|---:|---:|\n` +
  top.map((t) => `| \`${t.fn}\` | ${t.ms} | ${t.pct} |`).join('\n') +
  `\n\n| service function (inclusive: with what it calls) | ms | % |\n|---|---:|---:|\n` +
  topSrc.map((t) => `| \`${t.fn}\` | ${t.ms} | ${t.pct} |`).join('\n') +
  '\n';
await writeFile(path.join(ROOT, `bench/results/profile-${label}.md`), md);
console.log(md);
