/**
 * Local S3 for `npm start` with no S3 configured: s3rver in process, data on disk under
 * `.data/s3` (git-ignored), the bucket created at start. For development only; s3rver is a
 * devDependency and is loaded lazily so no production bundle carries it.
 */
import { mkdir } from 'node:fs/promises';

/** s3rver's fixed credentials (it checks signatures against these). */
export const EMBEDDED_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface EmbeddedS3 {
  endpoint: string;
  close(): Promise<void>;
}

export async function startEmbeddedS3(options: { directory: string; bucket: string; port?: number }): Promise<EmbeddedS3> {
  let S3rver: typeof import('s3rver').default;
  try {
    S3rver = (await import('s3rver')).default;
  } catch (err) {
    throw new Error('The embedded S3 needs the s3rver devDependency (run `npm install`), or set S3_ENDPOINT/UPLOAD_BUCKET', {
      cause: err,
    });
  }
  await mkdir(options.directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    silent: true,
    directory: options.directory,
    configureBuckets: [{ name: options.bucket }],
  });
  const { port } = await server.run();
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() };
}
