// What one failed part costs: the discard S3 refuses part 3 of every upload (403, not retried
// by the SDK) and the load client sends one file of --size (default 1 GiB). Prints, per
// variant, how long the client waited for the error and how many parts and bytes the server
// still sent to S3 after the refusal. The service variants run as in bench/run.mjs
// (bench/variants.mjs). Writes bench/results/failure-cost.{json,md}.
//
//   node bench/failure-cost.mjs [--size=1GiB] [--src=HEAD] [--only=naive,service]
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildBundles } from './build.mjs';
import { setTimeout } from 'node:timers';
import { MiB, ROOT, parseSize, runClient, startDiscardS3, startServer } from './lib.mjs';
import { VARIANTS, variantEnv } from './variants.mjs';

const arg = (name, def) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const sizeArg = arg('size', '1GiB');
const size = parseSize(sizeArg);
const variants = arg('only', 'naive,service').split(',');
for (const v of variants) if (!VARIANTS[v]?.s3) throw new Error(`${v}: not a variant that stores to S3`);
const { bundles, src } = await buildBundles([...new Set(variants.map((v) => VARIANTS[v].bundle))], arg('src', undefined));

const rows = [];
for (const v of variants) {
  const s3 = await startDiscardS3(['--fail-part=3']);
  const server = await startServer(
    bundles[VARIANTS[v].bundle],
    {
      ...s3.env,
      ...variantEnv(v, { discard: true }),
    },
    { nodeArgs: VARIANTS[v].nodeArgs ?? [] },
  );
  const r = await runClient({ url: `${server.url}/uploads`, count: 1, size, timeoutMs: 300_000 });
  // Give stragglers a moment to reach the S3 before reading its counters.
  await new Promise((res) => setTimeout(res, 500));
  const stats = await s3.stats();
  await server.stop();
  await s3.stop();
  const row = {
    variant: v,
    status: r.requests?.[0]?.status,
    secondsToAnswer: +(r.seconds ?? 0).toFixed(2),
    partsSent: stats.parts + 1,
    partsAfterFailure: stats.partsAfterFailure,
    MiBAfterFailure: +(stats.bytesAfterFailure / MiB).toFixed(0),
    aborts: stats.aborts,
    openUploads: stats.openUploads,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
}
await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
await writeFile(
  path.join(ROOT, 'bench/results/failure-cost.json'),
  JSON.stringify({ date: new Date().toISOString(), src, size, rows }, null, 2) + '\n',
);
const md =
  `# Cost of one refused part (part 3 of a ${sizeArg} upload, discard S3 answers 403)\n\n` +
  `\`node bench/failure-cost.mjs --size=${sizeArg}\`, src ${src.commit}.\n\n` +
  `| variant | status | s to answer | parts sent | parts after the refusal | MiB after the refusal | aborts | uploads left open |\n|---|---:|---:|---:|---:|---:|---:|---:|\n` +
  rows
    .map(
      (r) =>
        `| ${r.variant} | ${r.status} | ${r.secondsToAnswer} | ${r.partsSent} | ${r.partsAfterFailure} | ${r.MiBAfterFailure} | ${r.aborts} | ${r.openUploads} |`,
    )
    .join('\n') +
  '\n';
await writeFile(path.join(ROOT, 'bench/results/failure-cost.md'), md);
console.log(`\n${md}`);
