// Baseline "naive": what multer-s3 does. busboy hands each file stream straight to
// lib-storage's `Upload` with the SDK's defaults: 5 MiB parts, 4 in flight, one S3Client per
// process with the SDK's default request handler and checksum mode (WHEN_SUPPORTED: a CRC32
// of every part). Only what is needed to reach the endpoint is set. The response is sent once
// every file's Upload.done() settled, as multer does.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import busboy from 'busboy';

const env = process.env;
const bucket = env.UPLOAD_BUCKET;
const client = new S3Client({
  region: env.AWS_REGION ?? 'us-east-1',
  endpoint: env.S3_ENDPOINT,
  forcePathStyle: true,
  credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
  // Left to the SDK unless the bench says otherwise (radosgw rejects nothing here, s3rver would
  // store aws-chunked framing only for streamed PutObject, which lib-storage never sends).
  ...(env.AWS_REQUEST_CHECKSUM_CALCULATION ? { requestChecksumCalculation: env.AWS_REQUEST_CHECKSUM_CALCULATION } : {}),
});

const server = createServer((req, res) => {
  const uploads = [];
  let parser;
  try {
    parser = busboy({ headers: req.headers, defParamCharset: 'utf8' });
  } catch (err) {
    res.writeHead(415).end(String(err));
    return;
  }
  parser.on('file', (name, stream, info) => {
    // No listener of our own on the stream: lib-storage alone reads it (multer-s3 learns the
    // size from progress events; the bench client checks the size where a server reports it).
    const file = { field: name, filename: info.filename, key: `uploads/${randomUUID()}/${info.filename}` };
    const upload = new Upload({ client, params: { Bucket: bucket, Key: file.key, Body: stream, ContentType: info.mimeType } });
    uploads.push(upload.done().then((out) => ({ ...file, etag: out.ETag })));
  });
  parser.on('field', () => {});
  parser.on('error', (err) => {
    req.unpipe(parser);
    res.writeHead(400).end(String(err));
  });
  parser.on('close', async () => {
    const settled = await Promise.allSettled(uploads);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(failed.reason?.message ?? failed.reason) }));
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ files: settled.map((s) => s.value) }));
  });
  req.pipe(parser);
});
server.listen(Number(env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`naive listening on http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
