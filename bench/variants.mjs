// The server variants the benchmarks start (bench/run.mjs, steady-rss.mjs, profile.mjs,
// failure-cost.mjs): the baselines, and this service as `npm start` runs it plus one knob
// changed at a time. `bundle` names an entry of bench/build.mjs; `s3`: it stores to S3 (else
// it only receives); `env`: always set; `discardEnv`: set only when the S3 is the discard S3;
// `nodeArgs`: node flags before the bundle.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './lib.mjs';

/**
 * The node flags of `npm start`: every token of package.json's `scripts.start` between `node`
 * and `dist/server.mjs`, read at bench start so the service variants run as `npm start` does.
 */
export function npmStartNodeArgs() {
  const start = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts?.start ?? '';
  const tokens = start.trim().split(/\s+/);
  const from = tokens.indexOf('node');
  const to = tokens.findIndex((t) => t === 'dist/server.mjs' || t === './dist/server.mjs');
  if (from < 0 || to <= from)
    throw new Error(
      `cannot read the node flags of npm start: expected "node [flags] dist/server.mjs", got ${JSON.stringify(start)}`,
    );
  return tokens.slice(from + 1, to);
}

export const SERVICE_NODE_ARGS = npmStartNodeArgs();

/**
 * The discard S3 is plain http; on AWS the service talks TLS, where its defaults are an
 * UNSIGNED-PAYLOAD signature and a CRC32 per part (WHEN_SUPPORTED). These two make the service
 * do on the discard S3 what it does on AWS. Not set on the real S3s (radosgw, s3rver): those
 * reject or mishandle the CRC32 trailer, so there the service runs with its own defaults for a
 * custom http endpoint (payload signed, checksums only when required).
 */
export const AS_OVER_TLS = { S3_UNSIGNED_PAYLOAD: 'true', AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_SUPPORTED' };

const service = (env, label) => ({
  bundle: 'service',
  s3: true,
  env,
  discardEnv: AS_OVER_TLS,
  nodeArgs: SERVICE_NODE_ARGS,
  label,
});

export const VARIANTS = {
  raw: { bundle: 'raw', s3: false, label: 'raw: node:http server that discards the body (loopback ceiling)' },
  busboy: { bundle: 'busboy', s3: false, label: 'busboy parse-only (parser ceiling)' },
  proxy: {
    bundle: 'proxy',
    s3: true,
    label: 'proxy ceiling: node:http piping the raw body into one PUT to the S3 (one socket in, one out)',
  },
  naive: {
    bundle: 'naive',
    s3: true,
    label: 'naive busboy -> lib-storage Upload, SDK defaults (5 MiB parts, queue 4), as multer-s3',
  },
  buffered: { bundle: 'buffered', s3: true, label: 'buffered: whole file in memory (multer memoryStorage), then Upload' },
  service: service(
    {},
    'this service: npm start (src/server.ts bundle, its node flags, default settings: byte budget, CRC32 per part, GC pacer); unsigned payload as over TLS',
  ),
  'service-sha256': service({ UPLOAD_SHA256: 'always' }, 'service + UPLOAD_SHA256=always: a SHA-256 of every file'),
  // Experiments on npm start's young-generation size (small files allocate per request).
  'service-semi1': {
    ...service({}, "service with --max-semi-space-size=1 (npm start's value before the small-file sweep)"),
    nodeArgs: SERVICE_NODE_ARGS.map((a) => (a.startsWith('--max-semi-space-size') ? '--max-semi-space-size=1' : a)),
  },
  'service-semi4': {
    ...service({}, "service with --max-semi-space-size=4 instead of npm start's value"),
    nodeArgs: SERVICE_NODE_ARGS.map((a) => (a.startsWith('--max-semi-space-size') ? '--max-semi-space-size=4' : a)),
  },
  'service-semi8': {
    ...service({}, "service with --max-semi-space-size=8 instead of npm start's value"),
    nodeArgs: SERVICE_NODE_ARGS.map((a) => (a.startsWith('--max-semi-space-size') ? '--max-semi-space-size=8' : a)),
  },
  'service-semi16': {
    ...service({}, "service with --max-semi-space-size=16 instead of npm start's value"),
    nodeArgs: SERVICE_NODE_ARGS.map((a) => (a.startsWith('--max-semi-space-size') ? '--max-semi-space-size=16' : a)),
  },
  // V8's experimental non-copying young-generation collector, against the scavenger's copies
  // of the requests in flight (bench/README.md, "Small requests against naive").
  'service-minorms': {
    ...service({}, 'service with --minor-ms (young-generation mark-sweep)'),
    nodeArgs: [...SERVICE_NODE_ARGS, '--minor-ms'],
  },
  'service-hgp50': {
    ...service({}, "service with --heap-growing-percent=50 instead of npm start's value"),
    nodeArgs: SERVICE_NODE_ARGS.map((a) => (a.startsWith('--heap-growing-percent') ? '--heap-growing-percent=50' : a)),
  },
  // V8's parallel scavenging, which npm start turns off (bench/README.md, "Scavenges on the
  // main thread").
  'service-ps': {
    ...service({}, 'service with parallel scavenging (npm start without --no-parallel-scavenge)'),
    nodeArgs: SERVICE_NODE_ARGS.filter((a) => a !== '--no-parallel-scavenge'),
  },
  'service-esm-builtins': {
    ...service({}, "service bundled with Node's built-ins as ES imports (before the builtins-via-require plugin)"),
    bundle: 'service-esm-builtins',
  },
  'service-cjs-deps': {
    ...service(
      {},
      'service bundled with the CommonJS builds of its dependencies (before SERVER_BUILD_OPTIONS took their ES builds)',
    ),
    bundle: 'service-cjs-deps',
  },
  'service-budget32': service(
    { UPLOAD_MEMORY_BYTES: String(32 * 1024 * 1024) },
    'service + UPLOAD_MEMORY_BYTES=32MiB: a smaller byte budget than the default 40 MiB',
  ),
  'service-nogc': service(
    { UPLOAD_GC_EVERY_BYTES: '0' },
    'service + UPLOAD_GC_EVERY_BYTES=0: GC pacer off (GC timing left to V8)',
  ),
};

/** The environment of a variant beyond the S3 endpoint and credentials. */
export function variantEnv(name, { discard }) {
  const v = VARIANTS[name];
  if (!v) throw new Error(`unknown variant ${JSON.stringify(name)} (known: ${Object.keys(VARIANTS).join(', ')})`);
  return { ...(v.env ?? {}), ...(discard ? (v.discardEnv ?? {}) : {}) };
}

/** One line on how the service variants run, for the results files. */
export const SERVICE_NOTE =
  `Service variants (service*) run the src/server.ts bundle with npm start's node flags (${SERVICE_NODE_ARGS.join(' ') || 'none'}, ` +
  `from package.json); on the discard S3 with ${Object.entries(AS_OVER_TLS)
    .map(([k, v]) => `${k}=${v}`)
    .join(
      ' ',
    )} (what the service does on AWS over TLS); on a real S3 with the service's defaults for an http endpoint (payload signed, no CRC32).`;
