// vitest globalSetup: makes a real Ceph radosgw (S3) available to integration tests and provides
// its endpoint as `inject('radosgwEndpoint')` ('' when unavailable; radosgw suites then skip).
//
// - S3_TEST_RADOSGW=0: don't use radosgw at all.
// - A radosgw already answering on 127.0.0.1:$RGW_PORT (default 7480) is reused and left running
//   (start one yourself with `bash scripts/ceph.sh start` to save the start-up on every run).
// - Otherwise `bash scripts/ceph.sh start` installs Ceph if needed (root, Debian) and starts a
//   one-node cluster in .ceph/; teardown stops it and removes its data.
// - If it cannot start: with CI (or S3_TEST_RADOSGW=1) set, the run fails; otherwise a warning is
//   printed and the radosgw suites are skipped.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import type {} from './radosgw.ts'; // the `ProvidedContext` declaration for project.provide()

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCRIPT = path.join(ROOT, 'scripts/ceph.sh');
const CEPH_DIR = process.env.CEPH_DIR ? path.resolve(ROOT, process.env.CEPH_DIR) : path.join(ROOT, '.ceph');
const LOG_FILE = path.join(CEPH_DIR, 'global-setup.log');
const PORT = process.env.RGW_PORT || '7480';
const ENDPOINT = `http://127.0.0.1:${PORT}`;
// `apt-get install` (~20-40 s) + start (~2 s, up to 120 s of waiting for radosgw).
const START_TIMEOUT_MS = 240_000;
const STOP_TIMEOUT_MS = 60_000;

let startedByUs = false;

/** True if an S3 server answers an anonymous ListBuckets on the endpoint. */
async function radosgwAnswers(): Promise<boolean> {
  try {
    const res = await fetch(`${ENDPOINT}/`, { signal: AbortSignal.timeout(2000) });
    const body = await res.text();
    return res.ok && body.includes('ListAllMyBucketsResult');
  } catch {
    return false;
  }
}

/** Runs `bash scripts/ceph.sh <cmd>` with its output in LOG_FILE (`start` begins a new log). */
function runCephScript(cmd: 'start' | 'stop', timeoutMs: number): Promise<{ code: number | null; timedOut: boolean }> {
  mkdirSync(CEPH_DIR, { recursive: true });
  const fd = openSync(LOG_FILE, cmd === 'start' ? 'w' : 'a');
  return new Promise((resolve) => {
    const child = spawn('bash', [SCRIPT, cmd], {
      cwd: ROOT,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, CEPH_DIR, RGW_PORT: PORT },
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
    }, timeoutMs);
    const done = (code: number | null) => {
      clearTimeout(timer);
      closeSync(fd);
      resolve({ code, timedOut });
    };
    child.on('error', () => done(null));
    child.on('exit', (code) => done(code));
  });
}

function logTail(lines = 60): string {
  try {
    return readFileSync(LOG_FILE, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function setup(project: TestProject): Promise<void> {
  if (process.env.S3_TEST_RADOSGW === '0') {
    project.provide('radosgwEndpoint', '');
    return;
  }
  if (await radosgwAnswers()) {
    console.log(`[radosgw] reusing the S3 server already answering on ${ENDPOINT} (left running)`);
    project.provide('radosgwEndpoint', ENDPOINT);
    return;
  }

  const t0 = performance.now();
  const { code, timedOut } = await runCephScript('start', START_TIMEOUT_MS);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  if (code === 0 && (await radosgwAnswers())) {
    startedByUs = true;
    console.log(`[radosgw] started on ${ENDPOINT} in ${seconds} s (log: ${path.relative(ROOT, LOG_FILE)})`);
    project.provide('radosgwEndpoint', ENDPOINT);
    return;
  }

  // ceph.sh stops what it started when it fails, but not when killed on timeout.
  if (timedOut) await runCephScript('stop', STOP_TIMEOUT_MS);
  const why = timedOut ? `timed out after ${START_TIMEOUT_MS / 1000} s` : `exit code ${code}`;
  const message = `[radosgw] could not start radosgw with scripts/ceph.sh start (${why}; log: ${LOG_FILE}):\n` + `${logTail()}\n`;
  if (process.env.CI || process.env.S3_TEST_RADOSGW === '1') throw new Error(message);
  console.warn(
    `\n${message}[radosgw] WARNING: radosgw integration tests will be SKIPPED. ` +
      `Run 'sudo bash scripts/ceph.sh start' once, or set S3_TEST_RADOSGW=0 to silence this.\n`,
  );
  project.provide('radosgwEndpoint', '');
}

export async function teardown(): Promise<void> {
  if (!startedByUs) return;
  startedByUs = false;
  const { code, timedOut } = await runCephScript('stop', STOP_TIMEOUT_MS);
  if (code !== 0) {
    console.warn(`[radosgw] scripts/ceph.sh stop failed (${timedOut ? 'timeout' : `exit ${code}`}):\n${logTail(20)}`);
  }
}
