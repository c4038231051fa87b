/**
 * Clients that go away: the real server (`npm start`'s bundle) in a child process, writing
 * into radosgw. Each trial streams a generated file and destroys the client socket at a
 * random offset of the body (seeded, so a failure replays). After each trial no multipart
 * upload may stay open and no object may exist (bounded poll: the abort finishes after the
 * socket is gone); afterwards the server still answers a normal upload with 201, and its RSS
 * is back near the baseline taken after a warm-up upload.
 *
 * DISCONNECT_TRIALS (default 60) and DISCONNECT_SEED (default 20240611) override the run.
 */
import { request } from 'node:http';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { get, post } from '../helpers/http.ts';
import { BOUNDARY, CONTENT_TYPE, prng, streamMultipart } from '../helpers/multipart.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { NPM_START_FLAGS, startServerProcess, type ServerProcess } from '../helpers/server-process.ts';
import { deleteKeys, destroyBucket, listKeys, listOpenUploads, pollUntil, type OpenUpload } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const KiB = 1024;
const MiB = 1024 * KiB;
const PART = 5 * MiB;
const TRIALS = Number(process.env['DISCONNECT_TRIALS'] ?? 60);
const SEED = Number(process.env['DISCONNECT_SEED'] ?? 20240611);
/** Cut uploads run before the baseline is taken (not counted in TRIALS). */
const WARM_TRIALS = 10;
const MIN_SIZE = KiB;
const MAX_SIZE = 24 * MiB;
/**
 * RSS the server may keep above its warmed-up baseline once the trials are over, both read
 * after a full GC (without one, V8 keeps up to its 64 MiB external-memory soft limit of dead
 * part Buffers around): glibc keeps some freed heap mapped, so a few parts' worth may stay
 * resident without a leak. A leak of one part per trial would be 60 x 5 MiB.
 */
const RSS_SLACK = 40 * MiB;
/** Part buffers the pool may keep for reuse: the default memory budget and two spare parts. */
const KEPT_BUFFERS = loadConfig({}).memory.budgetBytes + 2 * PART;

let server: ServerProcess;
let url: string;
let direct: S3Client;
let bucket: string;
const serverLines: string[] = [];
let inspectorUrl: string | undefined;

/** One Chrome DevTools Protocol call to the server process over its inspector socket. */
async function inspect(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
  if (!inspectorUrl) throw new Error('no inspector URL from the server');
  const ws = new WebSocket(inspectorUrl);
  try {
    return await new Promise<unknown>((resolve, reject) => {
      ws.onerror = () => reject(new Error('inspector connection failed'));
      ws.onopen = () => ws.send(JSON.stringify({ id: 1, method, params }));
      ws.onmessage = (m) => {
        const msg = JSON.parse(String(m.data)) as { id?: number; result?: unknown; error?: unknown };
        if (msg.id !== 1) return;
        if (msg.error) reject(new Error(JSON.stringify(msg.error)));
        else resolve(msg.result);
      };
    });
  } finally {
    ws.close();
  }
}

interface MemoryFigures {
  rss: number;
  heapUsed: number;
  /** Memory of ArrayBuffers and Buffers: where part buffers live. */
  arrayBuffers: number;
}

/** Memory after two full GCs and a short pause (freed memory goes back to the OS). */
async function settledMemory(): Promise<MemoryFigures> {
  await inspect('HeapProfiler.collectGarbage');
  await inspect('HeapProfiler.collectGarbage');
  await new Promise((r) => setTimeout(r, 300));
  const result = (await inspect('Runtime.evaluate', {
    expression: 'JSON.stringify(process.memoryUsage())',
    returnByValue: true,
  })) as { result: { value: string } };
  const usage = JSON.parse(result.result.value) as { heapUsed: number; arrayBuffers: number };
  return { rss: (await server.statusKiB('VmRSS')) * KiB, heapUsed: usage.heapUsed, arrayBuffers: usage.arrayBuffers };
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

describe.skipIf(!endpoint)('client disconnects at random offsets (server bundle, radosgw)', () => {
  beforeAll(async () => {
    direct = radosgwClient(endpoint);
    bucket = await createTestBucket(direct, uniqueBucketName('disconnect'));
    // The inspector (loopback, random port) lets the test run a full GC before it reads RSS,
    // so garbage V8 has not collected yet is not mistaken for a leak.
    server = await startServerProcess({
      nodeArgs: [...NPM_START_FLAGS, '--inspect=127.0.0.1:0'],
      env: {
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        AWS_ACCESS_KEY_ID: RADOSGW_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: RADOSGW_SECRET_KEY,
        S3_PART_BYTES: String(PART),
        UPLOAD_MAX_FILE_BYTES: String(64 * MiB),
        LOG_LEVEL: 'warn',
      },
      onStderr: (text) => {
        inspectorUrl ??= /ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+/.exec(text)?.[0];
        serverLines.push(...text.split('\n').filter((l) => l && !/Debugger|inspector|nodejs.org\/en\/docs/i.test(l)));
      },
      onStdout: (text) => {
        for (const line of text.split('\n')) if (line.startsWith('{')) serverLines.push(line);
      },
    });
    url = server.url;
  });

  afterAll(async () => {
    server?.stop();
    if (direct) {
      await destroyBucket(direct, bucket);
      direct.destroy();
    }
  });

  /**
   * Streams one file and destroys the socket once `cut` bytes of the body were written
   * (after `delayMs`, so some trials cut while the server is still reading, some while it
   * is already talking to S3). Resolves once the client side is closed.
   */
  function cutUpload(
    size: number,
    seed: number,
    cut: number,
    opts: { ndjson: boolean; contentLength: boolean; delayMs: number },
  ) {
    const body = streamMultipart(
      [{ name: 'file', filename: `cut-${seed}.bin`, size, seed }],
      [{ name: 'trial', value: String(seed) }],
    );
    const headers: Record<string, string | number> = { 'content-type': CONTENT_TYPE };
    if (opts.ndjson) headers['accept'] = 'application/x-ndjson';
    if (opts.contentLength) headers['content-length'] = body.length;
    return new Promise<{ sent: number; status?: number }>((resolve) => {
      const req = request(`${url}/uploads`, { method: 'POST', headers });
      let sent = 0;
      let status: number | undefined;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        body.stream.destroy();
        req.destroy();
        resolve({ sent, ...(status !== undefined ? { status } : {}) });
      };
      req.on('response', (res) => {
        status = res.statusCode;
        res.resume();
      });
      req.on('error', finish);
      req.on('close', finish);
      req.on('drain', () => body.stream.resume());
      body.stream.on('data', (chunk: Buffer) => {
        const room = cut - sent;
        if (room <= 0) return;
        const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
        sent += piece.length;
        const ok = req.write(piece);
        if (sent >= cut) {
          body.stream.pause();
          setTimeout(finish, opts.delayMs);
        } else if (!ok) body.stream.pause();
      });
    });
  }

  interface TrialStats {
    trials: number;
    bytesSent: number;
    cutPastFirstPart: number;
    answeredBeforeCut: number;
    maxRss: number;
    leftovers: Array<{ trial: number; open: OpenUpload[]; keys: string[] }>;
  }

  /** Runs `count` cut uploads drawn from `rand`; checks S3 is clean after each one. */
  async function runTrials(rand: () => number, count: number, stats: TrialStats): Promise<void> {
    const logSize = Math.log(MAX_SIZE / MIN_SIZE);
    const closing = Buffer.byteLength(`--${BOUNDARY}--`);
    for (let i = 0; i < count; i++) {
      const trial = stats.trials++;
      // Half the sizes uniform (mostly multipart), half log-uniform (many single PutObjects).
      const size =
        trial % 2 === 0
          ? Math.round(MIN_SIZE + rand() * (MAX_SIZE - MIN_SIZE))
          : Math.round(MIN_SIZE * Math.exp(rand() * logSize));
      const length = streamMultipart(
        [{ name: 'file', filename: `cut-${trial}.bin`, size, seed: trial }],
        [{ name: 'trial', value: String(trial) }],
      ).length;
      // Anywhere before the closing delimiter is complete: with it, the request is whole and
      // the server may rightly store the file.
      const cut = Math.floor(rand() * (length - closing - 4));
      const opts = { ndjson: rand() < 0.5, contentLength: rand() < 0.5, delayMs: [0, 5, 50][Math.floor(rand() * 3)]! };
      const { sent, status } = await cutUpload(size, trial, cut, opts);
      stats.bytesSent += sent;
      if (cut > PART) stats.cutPastFirstPart++;
      if (status !== undefined) stats.answeredBeforeCut++;

      const left = await pollUntil(
        async () => ({ open: await listOpenUploads(direct, bucket), keys: await listKeys(direct, bucket) }),
        (x) => x.open.length === 0 && x.keys.length === 0,
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      if (left.open.length || left.keys.length) {
        stats.leftovers.push({ trial, ...left });
        console.log(
          `[disconnect] trial ${trial}: size ${size}, cut ${cut}, ${JSON.stringify(opts)} left ${JSON.stringify(left)}`,
        );
        // Clean so the next trials are judged on their own.
        await destroyOpenAndObjects();
      }
      stats.maxRss = Math.max(stats.maxRss, (await server.statusKiB('VmRSS')) * KiB);
    }
  }

  async function destroyOpenAndObjects(): Promise<void> {
    const { AbortMultipartUploadCommand } = await import('@aws-sdk/client-s3');
    for (const u of await listOpenUploads(direct, bucket)) {
      await direct.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.key, UploadId: u.uploadId })).catch(() => {});
    }
    await deleteKeys(direct, bucket, await listKeys(direct, bucket));
  }

  it(`${TRIALS} disconnects leave no upload, no object, and memory back at baseline`, async () => {
    expect(TRIALS).toBeGreaterThanOrEqual(50);
    const stats: TrialStats = { trials: 0, bytesSent: 0, cutPastFirstPart: 0, answeredBeforeCut: 0, maxRss: 0, leftovers: [] };
    // Warm up: SDK loaded, sockets open, the error paths JIT-compiled, and the allocator's
    // heap grown to what the largest upload needs (glibc keeps freed part buffers mapped for
    // reuse): one whole upload of the largest size, then a few cut ones. Then the baseline.
    const warm = streamMultipart([{ name: 'f', filename: 'warm.bin', size: MAX_SIZE, seed: 1 }]);
    const warmRes = await post(`${url}/uploads`, warm.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(warmRes.status).toBe(201);
    await deleteKeys(direct, bucket, [(warmRes.json as { files: Array<{ key: string }> }).files[0]!.key]);
    await runTrials(prng(SEED ^ 0x5eed), WARM_TRIALS, stats);
    const baselineNoGc = (await server.statusKiB('VmRSS')) * KiB;
    const base = await settledMemory();
    const baseline = base.rss;

    const measured: TrialStats = {
      ...stats,
      trials: 0,
      bytesSent: 0,
      cutPastFirstPart: 0,
      answeredBeforeCut: 0,
      maxRss: baseline,
      leftovers: [],
    };
    const t0 = performance.now();
    await runTrials(prng(SEED), TRIALS, measured);
    const seconds = (performance.now() - t0) / 1000;

    // The server keeps serving.
    expect((await get(`${url}/healthz`)).status).toBe(200);
    const after = streamMultipart([{ name: 'f', filename: 'after.bin', size: PART + 3, seed: 2 }]);
    const ok = await post(`${url}/uploads`, after.stream, { headers: { 'content-type': CONTENT_TYPE } });
    expect(ok.status).toBe(201);
    await deleteKeys(direct, bucket, [(ok.json as { files: Array<{ key: string }> }).files[0]!.key]);

    // Settle: a few small requests, a pause, then the memory (without and with a full GC).
    for (let i = 0; i < 5; i++) await get(`${url}/healthz`);
    await new Promise((r) => setTimeout(r, 1000));
    const settledNoGc = (await server.statusKiB('VmRSS')) * KiB;
    const end = await settledMemory();
    const peak = (await server.statusKiB('VmHWM')) * KiB;
    const errorLines = serverLines.filter((l) => l.includes('"level":"error"'));
    console.log(
      `[disconnect] ${TRIALS} trials (seed ${SEED}, after ${WARM_TRIALS} warm-up trials) in ${seconds.toFixed(1)} s, ` +
        `${mib(measured.bytesSent)} MiB sent, ${measured.cutPastFirstPart} cut past the first part, ` +
        `${measured.answeredBeforeCut} answered before the cut; leftovers: ${stats.leftovers.length + measured.leftovers.length}; ` +
        `RSS after GC: baseline ${mib(baseline)} MiB -> ${mib(end.rss)} MiB after the trials (slack ${mib(RSS_SLACK)}); ` +
        `without GC ${mib(baselineNoGc)} -> ${mib(settledNoGc)} MiB; max during trials ${mib(measured.maxRss)} MiB, VmHWM ${mib(peak)} MiB; ` +
        `heapUsed ${mib(base.heapUsed)} -> ${mib(end.heapUsed)} MiB, arrayBuffers ${mib(base.arrayBuffers)} -> ${mib(end.arrayBuffers)} MiB; ` +
        `server error log lines: ${errorLines.length}`,
    );
    for (const line of errorLines.slice(0, 5)) console.log(`[disconnect] server: ${line.slice(0, 400)}`);

    expect([...stats.leftovers, ...measured.leftovers]).toEqual([]);
    expect(await listOpenUploads(direct, bucket)).toEqual([]);
    expect(await listKeys(direct, bucket)).toEqual([]);
    expect(server.child.exitCode).toBeNull();
    expect(end.rss - baseline).toBeLessThan(RSS_SLACK);
    // No Buffer survives a trial: part buffers are released, and only those the pool keeps
    // for reuse stay (at most the memory budget's worth, plus two spare parts:
    // src/storage/part-pool.ts). A leak of one part per trial would be 60 x 5 MiB.
    expect(end.arrayBuffers - base.arrayBuffers).toBeLessThan(KEPT_BUFFERS);
  }, 120_000);
});
