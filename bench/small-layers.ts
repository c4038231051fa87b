// Where a small upload's CPU goes, layer by layer, in one process: each case stores one
// 64 KiB file into the discard S3 (its own process) from 16 concurrent loops, and its cost is
// this process's CPU time per file. The layers add up from the SDK call to the whole app, next
// to the naive pipeline (busboy -> lib-storage Upload) built the same way, so a cut shows in
// the layer it belongs to without the noise of sockets, a load client and a second server.
//
//   npm run bench:layers [-- --only=sdk,naive,...] [--n=3000] [--rounds=5] [--delay-ms=2]
//   npm run bench:layers -- --retained [--rounds=3]
//
// --retained measures memory instead of CPU: the JS heap that one request in flight keeps
// alive, per layer (64 requests started while the discard S3 holds its answers 1.5 s; heap
// used after a full GC, less the same before they started). What a request keeps alive is
// what each scavenge copies and, once it outlives two, promotes to the old space.
//
// Writes bench/results/small-layers.{json,md} (--retained: small-layers-retained.{json,md}).
// Runs on the sources (Node 24 strips the types), not on a bundle.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import busboy from 'busboy';
import { createPrometheusMetrics } from '../src/app/prometheus-metrics.ts';
import { loadConfig } from '../src/config.ts';
import { uploadFiles } from '../src/core/upload-files.ts';
import { createLogger } from '../src/logger.ts';
import { createS3Client } from '../src/storage/s3-client.ts';
import { sendS3 } from '../src/storage/s3-call.ts';
import { crc32ToBase64 } from '../src/storage/s3-requests.ts';
import { createS3UploadDeps, createServiceApp } from '../src/wiring.ts';

const arg = (name: string, def: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const RETAINED = process.argv.includes('--retained');
const N = Number(arg('n', '3000'));
const ROUNDS = Number(arg('rounds', '5'));
const CONCURRENCY = 16;
const ROOT = path.resolve(import.meta.dirname, '..');

const s3 = spawn(
  process.execPath,
  [path.join(ROOT, 'bench/discard-s3.mjs'), `--delay-ms=${arg('delay-ms', RETAINED ? '1500' : '2')}`],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const port = await new Promise<number>((resolve) =>
  s3.stdout.on('data', (d: Buffer) => {
    const m = /"port":(\d+)/.exec(String(d));
    if (m) resolve(Number(m[1]));
  }),
);
const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench' };
Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench' });
// As the service runs on AWS over TLS (bench/variants.mjs AS_OVER_TLS); no request log line, as in the bench.
const config = loadConfig({
  S3_ENDPOINT: `http://127.0.0.1:${port}`,
  UPLOAD_BUCKET: 'bench',
  S3_UNSIGNED_PAYLOAD: 'true',
  AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_SUPPORTED',
  LOG_LEVEL: 'warn',
});
const logger = createLogger(config.logLevel, { service: 'bench' }, () => {});
const client = createS3Client(config.s3, { credentials });
const { upload } = createS3UploadDeps(config, logger, { credentials });
const { app } = createServiceApp(config, {
  logger,
  metrics: createPrometheusMetrics({ processMetrics: false }),
  s3: { credentials },
});

// The naive server's client: SDK defaults but for the endpoint.
const naiveClient = new S3Client({
  region: 'us-east-1',
  endpoint: `http://127.0.0.1:${port}`,
  forcePathStyle: true,
  credentials,
});

const file = Buffer.alloc(64 * 1024, 7);
const boundary = `----bench${'x'.repeat(20)}`;
const body = Buffer.concat([
  Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  ),
  file,
  Buffer.from(`\r\n--${boundary}--\r\n`),
]);
const headers = { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) };
const sinkInput = (key: string, stream: Readable) => ({
  key,
  body: stream,
  contentType: 'application/octet-stream',
  contentDisposition: 'attachment',
  metadata: {},
  signal: new AbortController().signal,
  maxBytes: body.length,
});

const CASES: Record<string, { label: string; run: () => Promise<unknown> }> = {
  sdk: {
    label: 'PutObject alone (the service S3 client, CRC32 and signal as the sink sends them)',
    run: () =>
      sendS3(
        client,
        new PutObjectCommand({
          Bucket: 'bench',
          Key: `l/${randomUUID()}`,
          Body: file,
          ContentLength: file.length,
          ChecksumCRC32: crc32ToBase64(crc32(file)),
        }),
        { signal: new AbortController().signal, unsignedPayload: true },
        (c, o) => client.send(c, o),
      ),
  },
  sink: {
    label: '+ the S3 sink (part pool, confirmation)',
    run: () => upload.sink.put(sinkInput(`l/${randomUUID()}`, Readable.from([file]))),
  },
  'busboy-sink': {
    label: '+ busboy in front of the sink',
    run: () =>
      new Promise((resolve, reject) => {
        const parser = busboy({ headers });
        const puts: Array<Promise<unknown>> = [];
        parser.on('file', (_name, stream: Readable) => puts.push(upload.sink.put(sinkInput(`l/${randomUUID()}`, stream))));
        parser.on('close', () => Promise.all(puts).then(resolve, reject));
        Readable.from([body]).pipe(parser);
      }),
  },
  core: {
    label: '+ the core pipeline (uploadFiles: limits, keys, metadata, events)',
    run: async () => {
      let last;
      for await (const e of uploadFiles(
        { headers, body: Readable.from([body]), signal: new AbortController().signal, metadata: { 'uploaded-by': 'anonymous' } },
        { ...upload, logger },
      ))
        last = e;
      if (last?.type !== 'done') throw new Error(JSON.stringify(last));
    },
  },
  app: {
    label: '+ the app (auth, routing, rendering, metrics): app.handle(), no socket',
    run: async () => {
      const res = await app.handle({
        method: 'POST',
        path: '/uploads',
        headers,
        body: Readable.from([body]),
        signal: new AbortController().signal,
      });
      if (res.status !== 201) throw new Error(`status ${res.status}`);
      for await (const _ of res.body);
    },
  },
  naive: {
    label: 'naive: busboy -> lib-storage Upload (SDK defaults), no socket',
    run: () =>
      new Promise((resolve, reject) => {
        const parser = busboy({ headers });
        const uploads: Array<Promise<unknown>> = [];
        parser.on('file', (_name, stream: Readable, info: { filename: string; mimeType: string }) =>
          uploads.push(
            new Upload({
              client: naiveClient,
              params: { Bucket: 'bench', Key: `n/${randomUUID()}/${info.filename}`, Body: stream, ContentType: info.mimeType },
            }).done(),
          ),
        );
        parser.on('close', () => Promise.all(uploads).then(resolve, reject));
        Readable.from([body]).pipe(parser);
      }),
  },
};

/** KiB of JS heap each of `k` requests in flight keeps alive (after a full GC, less before). */
async function retainedPerRequest(run: () => Promise<unknown>, k: number, gc: () => void): Promise<number> {
  await Promise.all(Array.from({ length: k }, run)); // warm-up: every lazy init done
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const all = Promise.all(Array.from({ length: k }, run));
  // All k are parsed and waiting on the S3 by then (it answers after 1.5 s).
  await new Promise((r) => setTimeout(r, 400));
  gc();
  gc();
  const during = process.memoryUsage().heapUsed;
  await all;
  return (during - before) / k / 1024;
}

async function cpuPerFile(run: () => Promise<unknown>, n: number): Promise<number> {
  let started = 0;
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (started++ < n) await run();
    }),
  );
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const names = arg('only', Object.keys(CASES).join(',')).split(',');
const runs: Record<string, number[]> = {};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
if (RETAINED) {
  // gc(), enabled at run time as src/gc-pacer.ts does.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const K = 64;
  for (let round = 0; round < Number(arg('rounds', '3')); round++)
    for (const name of round % 2 ? [...names].reverse() : names)
      (runs[name] ??= []).push(await retainedPerRequest(CASES[name]!.run, K, gc));
  s3.kill();
  let md = `# JS heap one small request in flight keeps alive, by layer (one process)\n\n${K} requests of one 64 KiB file each in flight at once, the discard S3 holding its answers; heap used after a full GC, less the same before. \`npm run bench:layers -- --retained\`, ${new Date().toISOString()}, Node ${process.version}.\n\n| case | what | KiB per request in flight, median (min–max) |\n|---|---|---:|\n`;
  for (const name of names) {
    const xs = runs[name]!;
    md += `| ${name} | ${CASES[name]!.label} | ${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}) |\n`;
  }
  console.log(md);
  await writeFile(path.join(ROOT, 'bench/results/small-layers-retained.md'), md);
  await writeFile(
    path.join(ROOT, 'bench/results/small-layers-retained.json'),
    JSON.stringify({ date: new Date().toISOString(), inFlight: K, runs }, null, 2) + '\n',
  );
  process.exit(0);
}
for (const name of names) await cpuPerFile(CASES[name]!.run, 300); // warm-up
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order so drift hits every case alike.
  for (const name of round % 2 ? [...names].reverse() : names) (runs[name] ??= []).push(await cpuPerFile(CASES[name]!.run, N));
}
s3.kill();

let md = `# CPU per small file, by layer (one process)\n\n64 KiB files, ${CONCURRENCY} concurrent loops, ${N} files per case and round, ${ROUNDS} rounds alternated; discard S3 in its own process. \`npx tsx bench/small-layers.ts\`, ${new Date().toISOString()}, Node ${process.version}.\n\n| case | what | CPU µs per file, median (min–max) |\n|---|---|---:|\n`;
for (const name of names) {
  const xs = runs[name]!;
  md += `| ${name} | ${CASES[name]!.label} | ${Math.round(median(xs))} (${Math.round(Math.min(...xs))}–${Math.round(Math.max(...xs))}) |\n`;
}
console.log(md);
await writeFile(path.join(ROOT, 'bench/results/small-layers.md'), md);
await writeFile(
  path.join(ROOT, 'bench/results/small-layers.json'),
  JSON.stringify({ date: new Date().toISOString(), n: N, rounds: ROUNDS, runs }, null, 2) + '\n',
);
process.exit(0);
