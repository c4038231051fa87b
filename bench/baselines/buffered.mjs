// Baseline "buffered": multer's memoryStorage followed by an upload. busboy parses; every file
// is gathered in memory (its chunks, then one Buffer.concat, as multer does); once the whole
// request is read, each Buffer goes to S3 through lib-storage's `Upload` with the SDK's
// defaults (a Buffer body is cut into views, no further copies). Memory grows with the file.
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
  ...(env.AWS_REQUEST_CHECKSUM_CALCULATION ? { requestChecksumCalculation: env.AWS_REQUEST_CHECKSUM_CALCULATION } : {}),
});

const server = createServer((req, res) => {
  const files = [];
  let parser;
  try {
    parser = busboy({ headers: req.headers, defParamCharset: 'utf8' });
  } catch (err) {
    res.writeHead(415).end(String(err));
    return;
  }
  parser.on('file', (name, stream, info) => {
    const file = { field: name, filename: info.filename, mimeType: info.mimeType, chunks: [], buffer: undefined };
    files.push(file);
    stream.on('data', (chunk) => file.chunks.push(chunk));
    stream.on('end', () => {
      file.buffer = Buffer.concat(file.chunks);
      file.chunks = [];
    });
  });
  parser.on('field', () => {});
  parser.on('error', (err) => {
    req.unpipe(parser);
    res.writeHead(400).end(String(err));
  });
  parser.on('close', async () => {
    try {
      const out = await Promise.all(
        files.map(async (f) => {
          const key = `uploads/${randomUUID()}/${f.filename}`;
          const done = await new Upload({
            client,
            params: { Bucket: bucket, Key: key, Body: f.buffer, ContentType: f.mimeType },
          }).done();
          const size = f.buffer.length;
          f.buffer = undefined;
          return { field: f.field, filename: f.filename, key, size, etag: done.ETag };
        }),
      );
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ files: out }));
    } catch (err) {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err?.message ?? err) }));
    }
  });
  req.pipe(parser);
});
server.listen(Number(env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`buffered listening on http://127.0.0.1:${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
