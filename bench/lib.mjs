// Process plumbing shared by bench/run.mjs and bench/profile.mjs: start the discard S3, a
// server bundle and the load client as child processes, and read their memory and CPU from
// /proc. Every wait here is bounded.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearTimeout, setTimeout } from 'node:timers';

// Web globals of Node, named for the linter (its config lists only a few Node globals).
const { fetch, AbortSignal } = globalThis;

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/**
 * The value of `--name=value` on the command line, `true` for a bare `--name`, else `def`.
 */
export function cliArg(name, def, argv = process.argv.slice(2)) {
  const a = argv.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return def;
  return a.includes('=') ? a.slice(a.indexOf('=') + 1) : true;
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Bytes of a size argument: `64KiB`, `1MiB`, `3GiB` (or a plain byte count); throws on anything else. */
export function parseSize(text) {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(String(text));
  if (!m) throw new Error(`expected a size such as 64KiB, 1MiB or 3GiB, got ${JSON.stringify(text)}`);
  return Number(m[1]) * ({ KiB: 1024, MiB, GiB }[m[2]] ?? 1);
}

/** Node 24 for every child, whatever Node runs this script (npm run already gives 24). */
export const NODE = process.version.startsWith('v24.') ? process.execPath : path.join(ROOT, 'node_modules/.bin/node');
/** The version of that Node: what the servers and clients ran on, for the results' headers. */
export const NODE_VERSION = NODE === process.execPath ? process.version : execFileSync(NODE, ['-v']).toString().trim();

const CLK_TCK = 100;

/** VmHWM / VmRSS of a process, KiB (undefined once it is gone). */
export function memoryKiB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const read = (f) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    return { hwm: read('VmHWM'), rss: read('VmRSS') };
  } catch {
    return undefined;
  }
}

/** User + system CPU time of a process so far, seconds. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

export function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** s3rver in its own process (the real S3 when radosgw does not answer). */
export async function startS3rverChild(directory, bucket) {
  const { child, match } = await spawnUntil([path.join(ROOT, 'bench/s3rver-child.mjs'), directory, bucket], {
    env: { PATH: process.env.PATH },
    ready: /\{"port":(\d+)\}/,
    name: 's3rver',
  });
  return { endpoint: `http://127.0.0.1:${match[1]}`, pid: child.pid, child, stop: () => stopChild(child) };
}

/** Spawns a child and resolves once a stdout line matches `ready` (bounded by timeoutMs). */
function spawnUntil(args, { env, ready, timeoutMs = 20_000, name }) {
  const child = spawn(NODE, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => {
    err = (err + d.toString()).slice(-4000);
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} not ready within ${timeoutMs} ms: ${out}${err}`));
    }, timeoutMs);
    const onData = (d) => {
      out += d.toString();
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve({ child, match: m, stderr: () => err });
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}) before it was ready: ${out}${err}`));
    });
  });
}

/** Stops a child we started: SIGTERM, then SIGKILL after `graceMs`. Resolves when it is gone. */
export function stopChild(child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** The discard S3 (bench/discard-s3.mjs) in its own process. */
export async function startDiscardS3(args = []) {
  const { child, match } = await spawnUntil([path.join(ROOT, 'bench/discard-s3.mjs'), ...args], {
    env: { PATH: process.env.PATH },
    ready: /\{"port":(\d+)\}/,
    name: 'discard-s3',
  });
  const endpoint = `http://127.0.0.1:${match[1]}`;
  return {
    endpoint,
    /** What a server needs to store into it: endpoint, bucket, credentials. */
    env: { S3_ENDPOINT: endpoint, UPLOAD_BUCKET: 'bench', AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' },
    pid: child.pid,
    child,
    async stats() {
      return (await fetch(`${endpoint}/__stats`, { signal: AbortSignal.timeout(5000) })).json();
    },
    async reset() {
      await (await fetch(`${endpoint}/__reset`, { method: 'POST', signal: AbortSignal.timeout(5000) })).json();
    },
    stop: () => stopChild(child),
  };
}

/**
 * A server bundle in its own process; resolves with its URL once it prints
 * "listening on http://...". `nodeArgs` go before the bundle (e.g. --cpu-prof).
 */
export async function startServer(bundle, env, { nodeArgs = [], name = path.basename(bundle) } = {}) {
  const { child, match, stderr } = await spawnUntil([...nodeArgs, bundle], {
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
    ready: /listening on (http:\/\/[^\s"]+)/,
    name,
  });
  return { url: match[1], pid: child.pid, child, stderr, stop: (graceMs) => stopChild(child, graceMs) };
}

/** Runs the load client (bench/load-client.mjs) once; resolves with its JSON report. */
export function runClient({ url, count, size, timeoutMs }) {
  const child = spawn(NODE, [path.join(ROOT, 'bench/load-client.mjs'), JSON.stringify({ url, count, size, timeoutMs })], {
    cwd: ROOT,
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  child.stderr.on('data', (d) => (err = (err + d.toString()).slice(-4000)));
  return new Promise((resolve) => {
    // The client cuts its own requests at timeoutMs; this is the backstop.
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve({ pid: child.pid, ...JSON.parse(out.trim().split('\n').at(-1)) });
      } catch {
        resolve({ pid: child.pid, ok: false, error: `client exited ${code}: ${err || out}`.slice(0, 500) });
      }
    });
  });
}

/** Runs the small-file client (bench/small-client.mjs) once; resolves with its JSON report. */
export function runSmallClient(opts) {
  const child = spawn(NODE, [path.join(ROOT, 'bench/small-client.mjs'), JSON.stringify(opts)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.durationMs + 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(out.trim().split('\n').at(-1)));
      } catch {
        resolve({ ok: 0, requests: 0, error: `client exited ${code}: ${err || out}`.slice(0, 300) });
      }
    });
  });
}

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function formatBytes(n) {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`;
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`;
  return `${n} B`;
}
