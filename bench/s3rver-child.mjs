// s3rver (the embedded S3 of `npm start`) in its own process, as the bench's real S3 when no
// radosgw answers: data on disk under the given folder, one bucket. Prints {"port":N}.
//
//   node bench/s3rver-child.mjs <directory> <bucket>
import { mkdir } from 'node:fs/promises';
import S3rver from 's3rver';

const [directory, bucket] = process.argv.slice(2);
await mkdir(directory, { recursive: true });
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
const { port } = await server.run();
process.stdout.write(`${JSON.stringify({ port })}\n`);
const stop = () => server.close().then(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
