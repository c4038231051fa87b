/**
 * Ctrl-C with --state: the CLI (a real child process) gets SIGINT in the middle of a direct
 * upload, stops, keeps the session open, writes the state file and exits 130; the same
 * command run again sends only the parts that were missing (counted by a proxy in front of
 * radosgw) and the object is byte-exact, with no multipart upload left open.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.ts';
import { writeGeneratedFile } from '../helpers/generated-file.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { destroyBucket, listOpenUploads, readBack } from '../helpers/s3-inspect.ts';

const endpoint = inject('radosgwEndpoint');
const MiB = 1024 * 1024;
const PART = 5 * MiB;
const PARTS = 16;
const CLI = new URL('../../src/client/cli.ts', import.meta.url).pathname;

interface State {
  sessions: Array<{ key: string; partCount: number; parts: Array<{ partNumber: number }> }>;
}

describe.skipIf(!endpoint)('CLI --state survives Ctrl-C', () => {
  let s3: S3Client;
  let bucket: string;
  let proxy: FaultProxy;
  let server: RunningServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-int-'));
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('cli-int'));
    // The presigned part URLs point at the proxy, so it sees (and counts) every part PUT.
    proxy = await startFaultProxy(endpoint);
    server = await startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: proxy.url,
        S3_PART_BYTES: String(PART),
        UPLOAD_SESSION_SECRET: 'interrupt-test-secret-0123456789abcdef',
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );
  });

  afterAll(async () => {
    await server?.close();
    await proxy?.close();
    if (s3) {
      await destroyBucket(s3, bucket);
      s3.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('SIGINT: exit 130, session kept, state written; rerun sends only the missing parts', async () => {
    const path = join(dir, 'interrupted.bin');
    const sha = await writeGeneratedFile(path, PARTS * PART - 123, 9);
    const state = join(dir, 'state.json');
    const args = ['put', path, '--url', server.url, '--state', state, '--concurrency', '1', '--json'];

    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env['PATH'], HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Interrupt once a few parts are in (the state file follows every part).
    for (let i = 0; i < 1000; i++) {
      if (existsSync(state)) {
        try {
          if (((JSON.parse(readFileSync(state, 'utf8')) as State).sessions[0]?.parts.length ?? 0) >= 2) break;
        } catch {
          // Read between write and rename of a newer state.
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGINT');
    expect(await closed).toBe(130);
    expect(stderr).toMatch(/run the same command again to resume/);

    const saved = JSON.parse(readFileSync(state, 'utf8')) as State;
    expect(saved.sessions).toHaveLength(1);
    const done = saved.sessions[0]!.parts.length;
    expect(done).toBeGreaterThanOrEqual(2);
    expect(done).toBeLessThan(PARTS);
    // The session stayed open: the multipart upload is still there to resume.
    expect((await listOpenUploads(s3, bucket)).map((u) => u.key)).toEqual([saved.sessions[0]!.key]);

    proxy.clearLog();
    const rerun = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env['PATH'], HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    rerun.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    expect(await new Promise((resolve) => rerun.on('close', resolve))).toBe(0);
    const [file] = (JSON.parse(stdout) as { files: Array<{ key: string }> }).files;
    expect(file!.key).toBe(saved.sessions[0]!.key);
    const sentAgain = proxy.requests.filter((r) => r.op === 'UploadPart');
    expect(sentAgain).toHaveLength(PARTS - done);
    const already = new Set(saved.sessions[0]!.parts.map((p) => p.partNumber));
    expect(sentAgain.some((r) => already.has(Number(r.query['partNumber'])))).toBe(false);
    expect((await readBack(s3, bucket, file!.key)).sha256).toBe(sha);
    expect(existsSync(state)).toBe(false);
    expect(await listOpenUploads(s3, bucket)).toEqual([]);
  });
});
