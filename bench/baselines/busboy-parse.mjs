// Baseline "busboy": parse-only ceiling. busboy with its defaults (as src/core/multipart.ts
// builds it, minus the limits) parses the multipart body; each file stream is counted and
// dropped. Nothing goes to S3: this is the most any busboy-based pipeline can reach here.
// BENCH_BUSBOY_HWM (bytes) sets busboy's highWaterMark and fileHwm (default: Node's, 64 KiB).
import { createServer } from 'node:http';
import busboy from 'busboy';

const server = createServer((req, res) => {
  const files = [];
  let parser;
  try {
    const hwm = Number(process.env.BENCH_BUSBOY_HWM ?? 0);
    parser = busboy({
      headers: req.headers,
      defParamCharset: 'utf8',
      ...(hwm > 0 ? { highWaterMark: hwm, fileHwm: hwm } : {}),
    });
  } catch (err) {
    res.writeHead(415).end(String(err));
    return;
  }
  parser.on('file', (name, stream, info) => {
    const file = { field: name, filename: info.filename, size: 0 };
    files.push(file);
    stream.on('data', (chunk) => {
      file.size += chunk.length;
    });
  });
  parser.on('field', () => {});
  parser.on('error', (err) => {
    req.unpipe(parser);
    res.writeHead(400).end(String(err));
  });
  parser.on('close', () => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ files }));
  });
  req.pipe(parser);
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`busboy listening on http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
