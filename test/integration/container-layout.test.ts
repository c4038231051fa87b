/**
 * The container recipe without Docker (images cannot be pulled here): the runtime layout the
 * Dockerfile's final stage holds is assembled by scripts/container-layout.mjs in a clean
 * directory outside the checkout (no node_modules anywhere above it), started with the
 * image's CMD and ENV on this Node 24, and used for an upload into an in-process s3rver; the
 * image's HEALTHCHECK command is run against it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembleContainerLayout, listFiles, parseDockerfile } from '../../scripts/container-layout.mjs';
import type { UploadResult } from '../../src/protocol.ts';
import { buildMultipart, CONTENT_TYPE, sha256 } from '../helpers/multipart.ts';
import { readBack } from '../helpers/s3-inspect.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

type Layout = Awaited<ReturnType<typeof assembleContainerLayout>>;

let dir = '';
let layout: Layout;
let s3: TestS3rver;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'container-'));
  layout = await assembleContainerLayout(dir);
  s3 = await startS3rver();
}, 120_000);

afterAll(async () => {
  await s3?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** Runs an argv of the image (`node ...`) with this Node 24, in the image's WORKDIR. */
function imageArgv(argv: string[]): [string, string[]] {
  expect(argv[0], 'the image runs node directly (PID 1)').toBe('node');
  return [process.execPath, argv.slice(1)];
}

function runHealthcheck(env: NodeJS.ProcessEnv): Promise<number> {
  const [bin, args] = imageArgv(layout.healthcheck as string[]);
  return new Promise((resolve) => {
    execFile(bin, args, { cwd: layout.workdir, env, timeout: 10_000 }, (error) => {
      resolve(error ? (typeof error.code === 'number' ? error.code : 1) : 0);
    });
  });
}

describe('container recipe (Dockerfile)', () => {
  it('runs Node 24 as a non-root user with npm start flags and HOST=0.0.0.0', async () => {
    for (const image of layout.baseImages) expect(image).toMatch(/^node:24[.-]/);
    expect(process.versions.node.split('.')[0], 'the test runs the bundle on the Node of the image').toBe('24');
    expect(layout.user).not.toMatch(/^(root|0)(:|$)/);
    expect(layout.env).toMatchObject({ HOST: '0.0.0.0', NODE_ENV: 'production' });
    expect(layout.expose).toEqual([layout.env.PORT]);
    // The same flags and bundle as `npm start`.
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    // (`exec` there makes node replace npm's shell; in the image's exec-form CMD node is PID 1.)
    expect(layout.cmd).toEqual(pkg.scripts.start.replace(/^exec\s+/, '').split(/\s+/));
    expect(layout.healthcheck?.join(' ')).toContain('/healthz');
  });

  it('lets into the build context (.dockerignore) exactly what the build copies from it', async () => {
    const { stages } = parseDockerfile(await readFile(path.join(ROOT, 'Dockerfile'), 'utf8'));
    const copied = stages
      .flatMap((s) => s.instructions)
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((p) => p.replace(/\/$/, ''));
    const ignore = (await readFile(path.join(ROOT, '.dockerignore'), 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
    expect(ignore[0], 'everything is ignored but what is let in').toBe('*');
    expect(
      ignore
        .slice(1)
        .map((l) => l.replace(/^!/, ''))
        .sort(),
    ).toEqual([...new Set(copied)].sort());
  });

  it('holds the server bundle and nothing else (production dependencies are inside it)', async () => {
    expect(await listFiles(layout.root)).toEqual(['app/dist/server.mjs', 'app/dist/server.mjs.map']);
    expect(path.relative(ROOT, layout.root).startsWith('..'), 'outside the checkout: no node_modules to fall back on').toBe(true);
  });

  describe('started from the layout', () => {
    let child: ChildProcess;
    let base = '';
    let env: NodeJS.ProcessEnv;
    let stderr = '';

    beforeAll(async () => {
      const port = await freePort();
      // The image's environment, plus what an operator passes with `docker run -e`. HOST is
      // kept on loopback here (this machine is shared); the image's 0.0.0.0 is asserted above.
      env = {
        ...layout.env,
        HOST: '127.0.0.1',
        PORT: String(port),
        UPLOAD_BUCKET: s3.bucket,
        S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        AWS_REGION: 'us-east-1',
        LOG_LEVEL: 'info',
      };
      const [bin, args] = imageArgv(layout.cmd as string[]);
      child = spawn(bin, args, { cwd: layout.workdir, env, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.resume();
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      base = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 20_000;
      for (;;) {
        const ok = await fetch(`${base}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }, 30_000);

    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    });

    it('passes the image HEALTHCHECK', async () => {
      expect(await runHealthcheck(env)).toBe(0);
    });

    it('stores an upload byte-exact', async () => {
      const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251));
      const res = await fetch(`${base}/uploads`, {
        method: 'POST',
        headers: { 'content-type': CONTENT_TYPE },
        body: buildMultipart([
          { name: 'note', value: 'from the container layout' },
          { name: 'file', filename: 'layout.bin', data },
        ]),
      });
      const body = (await res.json()) as UploadResult;
      expect(res.status, JSON.stringify(body)).toBe(201);
      expect(body.files).toHaveLength(1);
      const stored = await readBack(s3.client, s3.bucket, body.files[0]!.key);
      expect([stored.size, stored.sha256]).toEqual([data.length, sha256(data)]);
    });

    it('exits 0 on SIGTERM (node is PID 1 in the image), after which the HEALTHCHECK fails', async () => {
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      child.kill('SIGTERM');
      const [code, signal] = await exited;
      expect([code, signal], stderr).toEqual([0, null]);
      expect(await runHealthcheck(env)).not.toBe(0);
    }, 30_000);
  });
});
