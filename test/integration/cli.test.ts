/**
 * The CLI as a calling service runs it: packages/client packed with `npm pack`, unpacked under a
 * node_modules/ (where Node will not strip TypeScript, so the bin must run the built bundle),
 * started through its node_modules/.bin link, against the Node server and radosgw.
 * JSON on stdout when piped, exit codes 0 / 1 (client error) / 2 (server error), --token,
 * a progress bar on a terminal, and the peak RSS for a 300 MiB file.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { DeleteObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildClientPackage } from '../../scripts/build.mjs';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { objectSha256, writeGeneratedFile } from '../helpers/generated-file.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const TOKEN = 'cli-test-token-0123456789';
const BIG = 300 * MiB;
const PART = 8 * MiB;
const CONCURRENCY = 4;
/**
 * Peak RSS bound for the CLI sending 300 MiB: Node's own footprint (~50 MiB for the bundle),
 * the part buffers (partSize x concurrency = 32 MiB), and as much again for what fetch
 * holds while a part is on the wire, plus slack for V8: 64 + 2 x 32 + 32 = 160 MiB.
 * A client that read the file whole would need 300+ MiB.
 */
const RSS_BOUND = 64 * MiB + 2 * PART * CONCURRENCY + 32 * MiB;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Highest VmHWM seen in /proc/<pid>/status, bytes. */
  peakRss: number;
}

describe.skipIf(!endpoint)('s3-stream-upload CLI (installed from npm pack)', () => {
  let s3: S3Client;
  let bucket: string;
  let server: RunningServer;
  let broken: RunningServer;
  let dir: string;
  let bin: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-'));
    // The client package only (not `npm run build`: other suites run the server bundle meanwhile).
    const { stdout } = await promisify(execFile)('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: await buildClientPackage(join(dir, 'client-package')),
    });
    const { filename } = (JSON.parse(stdout) as Array<{ filename: string }>)[0]!;
    const pkg = join(dir, 'node_modules', '@s3-stream-upload', 'client');
    await mkdir(pkg, { recursive: true });
    await promisify(execFile)('tar', ['-xzf', join(dir, filename), '-C', pkg, '--strip-components=1']);
    await mkdir(join(dir, 'node_modules', '.bin'));
    bin = join(dir, 'node_modules', '.bin', 's3-stream-upload');
    await symlink('../@s3-stream-upload/client/bin/s3-stream-upload.js', bin);

    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('cli'));
    const env = {
      PORT: '0',
      UPLOAD_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_PART_BYTES: String(PART),
      UPLOAD_SESSION_SECRET: 's'.repeat(40),
    };
    const s3Options = { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } };
    server = await startServer(loadConfig({ ...env, UPLOAD_AUTH_TOKEN: TOKEN }), {
      s3: s3Options,
      logger: createLogger('silent'),
    });
    // An S3 that is not there: every store call fails, so the service answers 5xx.
    broken = await startServer(loadConfig({ ...env, S3_ENDPOINT: 'http://127.0.0.1:9' }), {
      s3: s3Options,
      logger: createLogger('silent'),
    });
  });

  afterAll(async () => {
    await server?.close();
    await broken?.close();
    if (s3) {
      const objects = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
      for (const o of objects.Contents ?? []) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key! }));
      s3.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Runs the installed bin (through its .bin link, with `node` first on PATH), stdout piped. */
  function run(args: string[], options: { node?: string; env?: Record<string, string> } = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const node = options.node ?? process.execPath;
      const child = spawn(bin, args, {
        env: { PATH: `${dirname(node)}:${process.env['PATH']}`, HOME: dir, ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      let peakRss = 0;
      const poll = setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
        } catch {
          // Exited between two polls.
        }
      }, 20);
      child.on('error', reject);
      child.on('close', (code) => {
        clearInterval(poll);
        resolve({ code, stdout, stderr, peakRss });
      });
    });
  }

  const openUploads = async () =>
    ((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).map((u) => u.Key);

  it('uploads through both lanes and prints one JSON document when piped (exit 0)', async () => {
    const small = join(dir, 'notes.txt');
    const large = join(dir, 'scan.pdf');
    const smallSha = await writeGeneratedFile(small, 100_000, 1);
    const largeSha = await writeGeneratedFile(large, 12 * MiB + 5, 2);
    const res = await run(['put', small, large, '--url', server.url, '--token', TOKEN]);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { files: Array<{ key: string; lane: string; filename: string; contentType: string }> };
    expect(out.files.map((f) => [f.filename, f.lane, f.contentType])).toEqual([
      ['notes.txt', 'stream', 'text/plain'],
      ['scan.pdf', 'direct', 'application/pdf'],
    ]);
    expect((await objectSha256(s3, bucket, out.files[0]!.key)).sha256).toBe(smallSha);
    expect((await objectSha256(s3, bucket, out.files[1]!.key)).sha256).toBe(largeSha);
  });

  it(`keeps its peak RSS under ${RSS_BOUND / MiB} MiB for a ${BIG / MiB} MiB file`, async () => {
    const path = join(dir, 'big.bin');
    const sha = await writeGeneratedFile(path, BIG, 3);
    const started = performance.now();
    const res = await run(['put', path, '--url', server.url, '--concurrency', String(CONCURRENCY)], {
      env: { S3_STREAM_UPLOAD_TOKEN: TOKEN },
    });
    const seconds = (performance.now() - started) / 1000;
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    console.log(
      `[cli] ${BIG / MiB} MiB in ${seconds.toFixed(1)} s (${(BIG / MiB / seconds).toFixed(0)} MiB/s), peak RSS ${(res.peakRss / MiB).toFixed(0)} MiB (bound ${RSS_BOUND / MiB} MiB)`,
    );
    expect(res.peakRss).toBeGreaterThan(0);
    expect(res.peakRss).toBeLessThan(RSS_BOUND);
    const [file] = (JSON.parse(res.stdout) as { files: Array<{ key: string; size: number }> }).files;
    expect(await objectSha256(s3, bucket, file!.key)).toEqual({ sha256: sha, size: BIG });
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: file!.key }));
  });

  it.each([
    ['no token: 401 from the service', 1, 'UNAUTHORIZED', (f: string, url: string) => ['put', f, '--url', url]],
    ['wrong token', 1, 'UNAUTHORIZED', (f: string, url: string) => ['put', f, '--url', url, '--token', 'wrong-token-0123456789']],
    [
      'a file that does not exist',
      1,
      'FILE_ERROR',
      (_f: string, url: string) => ['put', '/nonexistent/x.bin', '--url', url, '--token', TOKEN],
    ],
    ['nobody listening', 2, 'NETWORK', (f: string) => ['put', f, '--url', 'http://127.0.0.1:9', '--retries', '0']],
  ])('%s: exit %i, JSON error %s', async (_label, exit, code, argv) => {
    const path = join(dir, 'codes.bin');
    await writeGeneratedFile(path, 1000, 4);
    const res = await run(argv(path, server.url));
    expect(res.code).toBe(exit);
    expect((JSON.parse(res.stdout) as { error: { code: string } }).error.code).toBe(code);
    expect(res.stderr).toMatch(/^s3-stream-upload: /);
  });

  it('a failing store: 5xx from the service is exit 2, in both lanes', async () => {
    const small = join(dir, 'five-xx.bin');
    const large = join(dir, 'five-xx-large.bin');
    await writeGeneratedFile(small, 1000, 5);
    await writeGeneratedFile(large, 6 * MiB, 6);
    for (const path of [small, large]) {
      const res = await run(['put', path, '--url', broken.url, '--retries', '0']);
      expect([res.code, (JSON.parse(res.stdout) as { error: { code: string; status: number } }).error]).toEqual([
        2,
        { code: 'STORAGE_FAILED', status: 502, message: expect.any(String) },
      ]);
    }
  });

  it('usage errors are exit 1 with the usage text', async () => {
    for (const args of [
      [],
      ['put'],
      ['put', 'x'],
      ['get', 'x', '--url', server.url],
      ['put', 'x', '--url', server.url, '--concurrency', '0'],
    ]) {
      const res = await run(args);
      expect([args, res.code]).toEqual([args, 1]);
      expect(res.stderr).toMatch(/Usage: s3-stream-upload put FILE/);
    }
  });

  it('resumes from a --state file after an interruption', async () => {
    const path = join(dir, 'stateful.bin');
    // Big enough (20 parts, one at a time) to be cut in the middle.
    const sha = await writeGeneratedFile(path, 20 * PART, 7);
    const state = join(dir, 'upload-state.json');
    // Interrupted: SIGTERM once a part went through (the state file appears after it).
    const child = spawn(bin, ['put', path, '--url', server.url, '--token', TOKEN, '--state', state, '--concurrency', '1'], {
      env: { PATH: `${dirname(process.execPath)}:${process.env['PATH']}`, HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const closed = new Promise((r) => child.on('close', r));
    // Cut the process hard, as a crash or a lost machine would (Ctrl-C: cli-interrupt.test.ts).
    for (let i = 0; i < 500; i++) {
      if (existsSync(state)) {
        const saved = JSON.parse(readFileSync(state, 'utf8')) as { sessions: Array<{ parts: unknown[] }> };
        if (saved.sessions[0]?.parts.length) break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGKILL');
    await closed;
    const saved = JSON.parse(readFileSync(state, 'utf8')) as { sessions: Array<{ key: string; parts: unknown[] }> };
    expect(saved.sessions).toHaveLength(1);
    expect(saved.sessions[0]!.parts.length).toBeGreaterThan(0);
    expect(await openUploads()).toEqual([saved.sessions[0]!.key]);

    const res = await run(['put', path, '--url', server.url, '--token', TOKEN, '--state', state]);
    expect(res.code).toBe(0);
    const [file] = (JSON.parse(res.stdout) as { files: Array<{ key: string }> }).files;
    expect(file!.key).toBe(saved.sessions[0]!.key);
    expect((await objectSha256(s3, bucket, file!.key)).sha256).toBe(sha);
    expect(existsSync(state)).toBe(false);
    expect(await openUploads()).toEqual([]);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: file!.key }));
  });

  it.skipIf(!existsSync('/usr/bin/node'))('runs on the system Node (20+) too', async () => {
    const path = join(dir, 'node20.bin');
    const sha = await writeGeneratedFile(path, 6 * MiB, 8);
    const res = await run(['put', path, '--url', server.url, '--token', TOKEN], { node: '/usr/bin/node' });
    expect([res.code, res.stderr]).toEqual([0, '']);
    const [file] = (JSON.parse(res.stdout) as { files: Array<{ key: string }> }).files;
    expect((await objectSha256(s3, bucket, file!.key)).sha256).toBe(sha);
  });

  it('draws a progress bar with rate and ETA on a terminal', async () => {
    const path = join(dir, 'tty.bin');
    await writeGeneratedFile(path, 20 * MiB, 9);
    // `script` gives the CLI a pseudo-terminal for stdout and stderr.
    const command = [bin, 'put', path, '--url', server.url, '--token', TOKEN].map((a) => `'${a}'`).join(' ');
    const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], {
      env: { PATH: `${dirname(process.execPath)}:${process.env['PATH']}`, HOME: dir, COLUMNS: '100' },
    });
    expect(stdout).toMatch(/\d+% \[[#.]+\] [\d.]+ (MiB|KiB) \/ 20\.0 MiB +[\d.]+ (B|KiB|MiB)\/s +ETA/);
    expect(stdout).toMatch(/tty\.bin {2}20\.0 MiB {2}direct {2}s3:\/\//);
  });
});
