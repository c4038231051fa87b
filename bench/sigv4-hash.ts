// CPU of one SigV4 signature as the service's S3 client makes it (an S3 PUT signed with
// UNSIGNED-PAYLOAD), with the SDK's default hash (`Sha256Node` of @smithy/core, the S3
// client's default before src/sha256.ts) and with src/sha256.ts, rounds alternated in one
// process; and the bare HMAC-SHA256 each one costs, by how its key reaches Node.
//
//   node bench/sigv4-hash.ts [--n=20000] [--rounds=5]
//
// Writes bench/results/sigv4-hash.{json,md}. Runs on the sources (Node 24 strips the types).
import { createHmac, createSecretKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Sha256Node } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '../src/sha256.ts';

const arg = (name: string, def: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? def;
const ROOT = path.resolve(import.meta.dirname, '..');
const N = Number(arg('n', '20000'));
const ROUNDS = Number(arg('rounds', '5'));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const request = () => ({
  method: 'PUT',
  protocol: 'http:',
  hostname: '127.0.0.1',
  port: 9000,
  path: '/bench/2026/12/02/0f6d3c1e-5a4b-4c1d-9e8f-112233445566/report.pdf',
  headers: {
    host: '127.0.0.1:9000',
    'content-type': 'application/pdf',
    'content-length': '65536',
    'x-amz-checksum-crc32': 'AAAAAA==',
    'x-amz-meta-caller': 'arn:aws:iam::123456789012:role/reports',
    'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
  },
  query: { 'x-id': 'PutObject' },
});

const signers = {
  sdk: new SignatureV4({ region: 'eu-west-1', service: 's3', credentials, sha256: Sha256Node, uriEscapePath: false }),
  service: new SignatureV4({ region: 'eu-west-1', service: 's3', credentials, sha256: Sha256, uriEscapePath: false }),
};

/** CPU µs per call of `fn`, `n` calls (awaited one by one, as requests sign). */
async function cpuPerCall(fn: () => unknown, n: number): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

const key = new Uint8Array(32).fill(7);
const keyObject = createSecretKey(key);
const text = 'AWS4-HMAC-SHA256\n20261202T100000Z\n20261202/eu-west-1/s3/aws4_request\n' + 'a'.repeat(64);
const cases: Record<string, () => unknown> = {
  'sign, SDK hash': () => signers.sdk.sign(request()),
  'sign, src/sha256.ts': () => signers.service.sign(request()),
  'HMAC, key as bytes': () => createHmac('sha256', key).update(text).digest(),
  'HMAC, key as KeyObject': () => createHmac('sha256', keyObject).update(text).digest(),
  'HMAC, createSecretKey per call': () => createHmac('sha256', createSecretKey(key)).update(text).digest(),
};

for (const fn of Object.values(cases)) await cpuPerCall(fn, 2000); // warm-up: optimised code for every case
const runs: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, fn] of Object.entries(cases)) runs[name]!.push(await cpuPerCall(fn, N));
}

const fmt = (xs: number[]): string => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
let md = `# SigV4: CPU per signature by hash\n\n${N} calls per case and round, ${ROUNDS} rounds alternated, one process. \`node bench/sigv4-hash.ts\`, ${new Date().toISOString()}, Node ${process.version}.\n\n| case | CPU µs per call, median (min–max) |\n|---|---:|\n`;
for (const [name, xs] of Object.entries(runs)) md += `| ${name} | ${fmt(xs)} |\n`;
process.stdout.write(md);
await writeFile(path.join(ROOT, 'bench/results/sigv4-hash.md'), md);
await writeFile(
  path.join(ROOT, 'bench/results/sigv4-hash.json'),
  JSON.stringify({ date: new Date().toISOString(), node: process.version, n: N, rounds: ROUNDS, runs }, null, 2) + '\n',
);
