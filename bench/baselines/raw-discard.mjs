// Baseline "raw": a node:http server that reads every request body and drops it. The loopback
// ceiling of this machine for one process receiving bytes (no parsing, no S3).
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  let n = 0;
  req.on('data', (chunk) => {
    n += chunk.length;
  });
  req.on('end', () => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ bytes: n }));
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`raw listening on http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
