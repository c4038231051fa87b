/**
 * Bench-only server: src/server.ts's wiring with the prototype sink
 * (src/storage/s3-part-uploader.ts: pooled part buffers, no lib-storage) in place of the
 * lib-storage one. Everything else (config, node:http adapter, core) is the service's own.
 * Not used by `npm start`.
 *
 * Bench knobs (environment): BENCH_POOL_PARTS (pooled buffers, default S3_QUEUE_SIZE + 1),
 * BENCH_UNSIGNED_PAYLOAD (`1`/`0`; default: the sink's rule, unsigned only over TLS),
 * BENCH_SOCKET_HWM (bytes, the server sockets' high-water mark; default Node's),
 * BENCH_EXPECT_CONTINUE (`0`: no `Expect: 100-continue` on parts; default the SDK's, from 2 MiB).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequestListener } from '../../src/adapters/node-http.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createS3Client } from '../../src/storage/s3-client.ts';
import { createS3PartUploader } from '../../src/storage/s3-part-uploader.ts';

const env = process.env;
const config = loadConfig(env);
const logger = createLogger(config.logLevel, { service: 's3-stream-upload', sink: 's3-part-uploader' });
const client = createS3Client(config.s3);
// The SDK sends `Expect: 100-continue` for bodies from 2 MiB: one round trip per part before
// its body. BENCH_EXPECT_CONTINUE=0 turns it off (the middleware reads this at call time).
if (env['BENCH_EXPECT_CONTINUE'] === '0') (client.config as { expectContinueHeader?: unknown }).expectContinueHeader = false;
const unsigned = env['BENCH_UNSIGNED_PAYLOAD'];
const sink = createS3PartUploader({
  client,
  bucket: config.s3.bucket,
  partBytes: config.s3.partBytes,
  queueSize: config.s3.queueSize,
  logger,
  ...(env['BENCH_POOL_PARTS'] ? { poolParts: Number(env['BENCH_POOL_PARTS']) } : {}),
  ...(unsigned !== undefined && unsigned !== '' ? { unsignedPayload: unsigned === '1' } : {}),
});
const hwm = Number(env['BENCH_SOCKET_HWM'] ?? 0);
// Same timeouts as src/server.ts.
const server = createServer(
  { requestTimeout: 0, headersTimeout: 30_000, keepAliveTimeout: 5_000, ...(hwm > 0 ? { highWaterMark: hwm } : {}) },
  createRequestListener({ upload: { sink, limits: config.limits, keyPrefix: config.keyPrefix, logger }, logger }),
);
server.setTimeout(120_000);
server.listen(config.port, config.host, () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`s3-stream-upload (pooled sink) listening on http://127.0.0.1:${port}\n`);
});
const stop = (): void => {
  server.closeIdleConnections();
  server.close(() => {
    client.destroy();
    process.exit(0);
  });
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
