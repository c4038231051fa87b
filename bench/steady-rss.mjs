// Peak RSS per upload at steady state: one server process per variant takes a 1 GiB warm-up
// (so V8's heap and the garbage of Node's HTTP body copies reach their working size), then
// uploads 64 MiB, 1 GiB and 4 GiB in turn; before each, the peak is reset to the current RSS
// (`echo 5 > /proc/<pid>/clear_refs`), so each figure is the highest RSS *during* that upload.
// Answers "does memory grow with the file?" apart from a fresh process's start-up transients.
// The service variants run as in bench/run.mjs (bench/variants.mjs: npm start's node flags,
// unsigned payload and CRC32 per part as over TLS). Writes bench/results/steady-rss.{json,md}.
//
//   node bench/steady-rss.mjs [--src=HEAD] [--rounds=2] [--only=raw,busboy,naive,service,service-nogc] [--name=x]
//     [--sizes=64MiB,1GiB,4GiB]   (--name=x: writes steady-rss-x.{json,md}; --sizes: the uploads, in MiB or GiB)
import { writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildBundles } from './build.mjs';
import { GiB, MiB, ROOT, median, memoryKiB, parseSize, runClient, startDiscardS3, startServer } from './lib.mjs';
import { SERVICE_NOTE, VARIANTS, variantEnv } from './variants.mjs';

const arg = (name, def) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const rounds = Number(arg('rounds', 2));
const DEFAULT_VARIANTS = ['raw', 'busboy', 'naive', 'service', 'service-nogc'];
const names = arg('only', DEFAULT_VARIANTS.join(',')).split(',');
const suffix = arg('name', undefined) ? `-${arg('name', undefined)}` : '';
for (const n of names) variantEnv(n, { discard: true }); // throws on an unknown name
const SIZES = arg('sizes', '64MiB,1GiB,4GiB').split(',').map(parseSize);
const label = (size) => (size >= GiB ? `${size / GiB} GiB` : `${size / MiB} MiB`);
const { bundles, src } = await buildBundles([...new Set(names.map((n) => VARIANTS[n].bundle))], arg('src', undefined));

const s3 = await startDiscardS3();
const samples = {};
try {
  for (let round = 1; round <= rounds; round++) {
    for (const name of names) {
      const v = VARIANTS[name];
      const server = await startServer(
        bundles[v.bundle],
        {
          ...s3.env,
          ...variantEnv(name, { discard: true }),
        },
        { nodeArgs: v.nodeArgs ?? [] },
      );
      const url = `${server.url}/uploads`;
      try {
        const warm = await runClient({ url, count: 1, size: GiB, timeoutMs: 300_000 });
        if (!warm.ok) throw new Error(`warm-up: ${warm.error}`);
        const line = [`r${round} ${name.padEnd(14)} after warm-up ${(memoryKiB(server.pid).rss / 1024).toFixed(0)} MiB;`];
        for (const size of SIZES) {
          writeFileSync(`/proc/${server.pid}/clear_refs`, '5');
          const r = await runClient({ url, count: 1, size, timeoutMs: 600_000 });
          const hwm = memoryKiB(server.pid).hwm / 1024;
          if (!r.ok) throw new Error(`${size}: ${r.error}`);
          ((samples[name] ??= {})[size] ??= []).push(hwm);
          line.push(`${size / MiB} MiB -> peak ${hwm.toFixed(0)} MiB`);
        }
        console.log(line.join(' '));
      } finally {
        await server.stop();
      }
    }
  }
} finally {
  await s3.stop();
}

const rows = names.map((name) => {
  const m = SIZES.map((s) => median(samples[name]?.[s] ?? []));
  return {
    variant: name,
    peakMiB: Object.fromEntries(SIZES.map((s, i) => [`${s / MiB}MiB`, m[i] === undefined ? undefined : +m[i].toFixed(1)])),
    // The largest upload's peak less the smallest's: does memory grow with the file?
    growthMiB: m[0] !== undefined && m.at(-1) !== undefined ? +(m.at(-1) - m[0]).toFixed(1) : undefined,
  };
});
await mkdir(path.join(ROOT, 'bench/results'), { recursive: true });
await writeFile(
  path.join(ROOT, `bench/results/steady-rss${suffix}.json`),
  JSON.stringify({ date: new Date().toISOString(), src, rounds, note: SERVICE_NOTE, samples, rows }, null, 2) + '\n',
);
const md =
  `# Peak RSS per upload at steady state (after a 1 GiB warm-up; peak reset before each upload)\n\n` +
  `\`node bench/steady-rss.mjs${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}\`, src ${src.commit}, median of ${rounds} rounds, discard S3. ` +
  `${SERVICE_NOTE}\n\n` +
  `| variant | ${SIZES.map(label).join(' | ')} | ${label(SIZES.at(-1))} - ${label(SIZES[0])} |\n|---|${SIZES.map(() => '---:|').join('')}---:|\n` +
  rows.map((r) => `| ${r.variant} | ${SIZES.map((s) => r.peakMiB[`${s / MiB}MiB`]).join(' | ')} | ${r.growthMiB} |`).join('\n') +
  '\n';
await writeFile(path.join(ROOT, `bench/results/steady-rss${suffix}.md`), md);
console.log(`\n${md}`);
