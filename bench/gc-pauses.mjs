// Young-generation GC pauses of one large upload: each variant's server runs under
// `--trace-gc` while one file goes into the discard S3; prints the scavenges' count, median,
// p90 and sum of pause times (main-thread ms, as V8 reports them) and the upload's wall time.
//
//   node bench/gc-pauses.mjs [--only=service,service-ps] [--size=1GiB] [--rounds=2]
//
// Variants alternate round by round. Writes nothing: a diagnostic (bench/README.md).
import { buildBundles } from './build.mjs';
import { MiB, cliArg, median, parseSize, runClient, startDiscardS3, startServer } from './lib.mjs';
import { VARIANTS, variantEnv } from './variants.mjs';

const variants = String(cliArg('only', 'service,service-ps')).split(',');
const sizeArg = String(cliArg('size', '1GiB'));
const size = parseSize(sizeArg);
const rounds = Number(cliArg('rounds', 2));
const { bundles } = await buildBundles([...new Set(variants.map((v) => VARIANTS[v].bundle))]);

async function measure(variant) {
  const s3 = await startDiscardS3([]);
  const server = await startServer(
    bundles[VARIANTS[variant].bundle],
    {
      ...s3.env,
      ...variantEnv(variant, { discard: true }),
    },
    { nodeArgs: [...(VARIANTS[variant].nodeArgs ?? []), '--trace-gc'] },
  );
  let trace = '';
  try {
    await runClient({ url: `${server.url}/uploads`, count: 1, size: 16 * MiB + 1, timeoutMs: 60_000 });
    // Only the measured upload's lines: listened to from here on.
    server.child.stdout.on('data', (d) => (trace += d));
    const started = Date.now();
    const run = await runClient({ url: `${server.url}/uploads`, count: 1, size, timeoutMs: 300_000 });
    if (!run.ok) throw new Error(`upload failed: ${run.error}`);
    const wallMs = Date.now() - started;
    // "Scavenge 12.3 (20.1) -> 8.0 (20.1) MB, pooled: 0 MB, 0.41 / 0.00 ms ..."
    const pauses = [...trace.matchAll(/Scavenge .*?MB, ([\d.]+) \/ [\d.]+ ms/g)].map((m) => Number(m[1]));
    const sorted = [...pauses].sort((a, b) => a - b);
    return {
      wallMs,
      scavenges: pauses.length,
      median: median(pauses),
      p90: sorted[Math.floor(sorted.length * 0.9)] ?? 0,
      sum: pauses.reduce((a, b) => a + b, 0),
    };
  } finally {
    await server.stop(30_000);
    await s3.stop();
  }
}

for (let round = 0; round < rounds; round++) {
  for (const variant of round % 2 ? [...variants].reverse() : variants) {
    const r = await measure(variant);
    console.log(
      `${variant.padEnd(14)} ${sizeArg}: ${r.wallMs} ms, ${r.scavenges} scavenges, pause median ${r.median.toFixed(2)} ms, ` +
        `p90 ${r.p90.toFixed(2)} ms, sum ${r.sum.toFixed(0)} ms`,
    );
  }
}
