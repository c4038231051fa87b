// Baseline "proxy": the proxy ceiling. A node:http server that pipes each raw request body
// (multipart framing and all) into one PUT to the S3 endpoint, with the request's
// Content-Length: one socket in, one out, no parsing, no signature, no part buffers. What any
// service that resends the bytes can reach on this machine; the service is measured against it.
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';

const env = process.env;
const target = new URL(env.S3_ENDPOINT);
const bucket = env.UPLOAD_BUCKET;
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((req, res) => {
  const key = `uploads/${randomUUID()}`;
  const headers = { 'content-type': 'application/octet-stream' };
  if (req.headers['content-length']) headers['content-length'] = req.headers['content-length'];
  const put = request(
    { host: target.hostname, port: target.port, method: 'PUT', path: `/${bucket}/${key}`, agent, headers },
    (s3res) => {
      s3res.resume();
      s3res.on('end', () => {
        const ok = s3res.statusCode === 200;
        res.writeHead(ok ? 201 : 502, { 'content-type': 'application/json' });
        res.end(JSON.stringify(ok ? { files: [{ key }] } : { error: { code: 'STORAGE_FAILED' } }));
      });
    },
  );
  put.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502).end(String(err));
  });
  req.pipe(put);
});
server.listen(Number(env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`proxy listening on http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
