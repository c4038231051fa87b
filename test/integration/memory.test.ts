/**
 * Fixed memory, measured from the OS: the real server (`npm start`'s bundle, default part
 * size and queue) in a child process streams a large upload into s3rver; its peak RSS
 * (VmHWM) must stay within a bound derived from part size x (queue size + 1) above its own
 * idle baseline. A pipeline that buffered the file would blow through it by hundreds of MiB.
 *
 * MEMORY_TEST_BYTES overrides the size (default 512 MiB).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../scripts/build.mjs';
import { parseBytes } from '../../src/config.ts';
import { post } from '../helpers/http.ts';
import { CONTENT_TYPE, streamMultipart } from '../helpers/multipart.ts';
import { startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const MiB = 1024 * 1024;
const SIZE = parseBytes(process.env['MEMORY_TEST_BYTES'] ?? '') ?? 512 * MiB;
// The server's defaults (src/config.ts): 8 MiB parts, 4 in flight.
const PART = 8 * MiB;
const QUEUE = 4;
/**
 * What one upload may hold beyond the warmed-up idle process:
 * - queue + 2 parts: the parts in flight, the one being gathered from small socket chunks,
 *   and lib-storage's Buffer.concat copy of it (its chunker always copies to cut a part);
 * - 64 MiB of slack: V8 frees dead Buffers only after external memory grew by its soft limit
 *   (64 MiB) since the last GC, so that much garbage can be resident at a peak.
 * A pipeline that buffered the file would need the whole file (512 MiB) on top.
 */
const FILE_BUDGET = PART * (QUEUE + 2) + 64 * MiB;

let s3: TestS3rver;
let child: ChildProcess;
let url: string;

async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

beforeAll(async () => {
  s3 = await startS3rver();
  // The bundle `npm start` runs, built fresh so the test measures the current sources.
  const bundle = await buildServer();
  child = spawn(process.execPath, ['--enable-source-maps', bundle], {
    env: {
      PATH: process.env['PATH'],
      PORT: '0',
      UPLOAD_BUCKET: s3.bucket,
      S3_ENDPOINT: s3.endpoint,
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
});

afterAll(async () => {
  child?.kill('SIGTERM');
  await s3?.close();
});

describe('memory stays fixed', () => {
  it(`streams ${SIZE / MiB} MiB with peak RSS within the part budget`, async () => {
    // Warm up: load the SDK, open sockets, JIT the hot path, then take the baseline.
    const warm = streamMultipart([{ name: 'f', filename: 'warm.bin', size: 2 * PART + 1, seed: 1 }]);
    expect((await post(`${url}/uploads`, warm.stream, { headers: { 'content-type': CONTENT_TYPE } })).status).toBe(201);
    const baselineKiB = await statusKiB(child.pid!, 'VmRSS');

    const body = streamMultipart([{ name: 'f', filename: 'large.bin', size: SIZE, seed: 2 }]);
    const t0 = performance.now();
    const res = await post(`${url}/uploads`, body.stream, { headers: { 'content-type': CONTENT_TYPE } });
    const seconds = (performance.now() - t0) / 1000;
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ files: [{ size: SIZE }] });

    const peakKiB = await statusKiB(child.pid!, 'VmHWM');
    const boundKiB = baselineKiB + FILE_BUDGET / 1024;
    console.log(
      `[memory] ${SIZE / MiB} MiB in ${seconds.toFixed(1)} s (${(SIZE / MiB / seconds).toFixed(0)} MiB/s incl. s3rver disk writes); ` +
        `server baseline ${(baselineKiB / 1024).toFixed(0)} MiB, peak ${(peakKiB / 1024).toFixed(0)} MiB, bound ${(boundKiB / 1024).toFixed(0)} MiB`,
    );
    expect(peakKiB).toBeLessThan(boundKiB);
  }, 300_000);
});
