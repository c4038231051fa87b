/**
 * The server bundle is what a container runs as `node dist/server.mjs`, and a container may
 * bring another Node than Lambda's 24. On every Node of `engines` it must serve (never exit
 * silently, as `import.meta.main`-only entry code did on Node 20 and 22), and its upload must
 * land byte-exact.
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMultipart, CONTENT_TYPE, sha256 } from '../helpers/multipart.ts';
import { node22, systemNode } from '../helpers/node-binaries.ts';
import { startServerProcess } from '../helpers/server-process.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';
import { readBack } from '../helpers/s3-inspect.ts';

let s3: TestS3rver;
const nodes: Array<[string, string]> = [];

beforeAll(async () => {
  s3 = await startS3rver();
  const system = await systemNode();
  if (system) nodes.push([system.version, system.bin]);
  const n22 = await node22();
  if (n22) nodes.push(['v22', n22]);
});

afterAll(async () => {
  await s3?.close();
});

describe('the server bundle on other Nodes', () => {
  it('serves and stores byte-exact on each Node found (the machine Node, Node 22)', async () => {
    if (nodes.length === 0) console.warn('[server-node-versions] no other Node binary found: nothing to run');
    for (const [label, bin] of nodes) {
      const server = await startServerProcess({
        node: bin,
        nodeArgs: [],
        env: {
          PORT: '0',
          LOG_LEVEL: 'warn',
          S3_ENDPOINT: s3.endpoint,
          UPLOAD_BUCKET: s3.bucket,
          AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
        },
      });
      try {
        const data = Buffer.alloc(6 * 1024 * 1024 + 5, 7);
        const res = await fetch(`${server.url}/uploads`, {
          method: 'POST',
          headers: { 'content-type': CONTENT_TYPE },
          body: buildMultipart([{ name: 'f', filename: 'f.bin', data }]),
        });
        expect(res.status, label).toBe(201);
        const { files } = (await res.json()) as { files: Array<{ key: string }> };
        expect(await readBack(s3.client, s3.bucket, files[0]!.key), label).toMatchObject({
          sha256: sha256(data),
          size: data.length,
        });
      } finally {
        server.stop();
        await once(server.child, 'exit');
      }
    }
  });
});
