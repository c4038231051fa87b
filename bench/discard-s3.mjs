// A minimal S3-compatible HTTP server for the benchmarks: it answers the calls an upload makes
// (CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
// PutObject, HeadObject, DeleteObject), reads every request body to the end and drops the
// bytes. It keeps only counters and the sizes of "stored" objects, so its memory is flat and
// the bench measures the upload service, not a store. No signature is checked.
//
// Runs as its own process (the bench reads its CPU and RSS apart from the server's; all
// processes still share the machine's cores):
//
//   node bench/discard-s3.mjs [--port=0] [--fail-part=N] [--delay-ms=N]
//
// It answers as AWS does where that decides how many requests an upload costs: a request that
// carries `x-amz-checksum-crc32` gets back the CRC32 of the bytes received (computed here), and
// a PutObject's ETag is the MD5 of its bytes. With --delay-ms=N every S3 request is answered N
// ms after its body was read (a round trip to a region; 0 by default).
//
// prints {"port":N} on stdout when listening. With --fail-part=N, UploadPart number N of every
// upload is answered 403 AccessDenied after its body was read (not retried by the SDK): what a
// pipeline does after a part fails can then be measured (bench/failure-cost.mjs).
//
// GET /__stats returns the counters as JSON; POST /__reset zeroes them.
import { createHash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { crc32 } from 'node:zlib';
import { setTimeout } from 'node:timers';

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const port = Number(arg('port') ?? 0);
const failPart = Number(arg('fail-part') ?? 0);
const delayMs = Number(arg('delay-ms') ?? 0);

const stats = {
  requests: 0,
  bytes: 0,
  creates: 0,
  parts: 0,
  completes: 0,
  aborts: 0,
  puts: 0,
  heads: 0,
  deletes: 0,
  errors: 0,
  /** Parts (and their bytes) that arrived after a part of the same upload was refused. */
  partsAfterFailure: 0,
  bytesAfterFailure: 0,
};
/** Open multipart uploads: uploadId -> { key, bytes, parts }. */
const uploads = new Map();
/** "Stored" objects: key -> { size, etag }. Sizes only; the bytes are gone. */
const objects = new Map();

const xml = (body) => `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
const esc = (s) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
const etagOf = (n) => `"${n.toString(16).padStart(32, '0')}"`;
let etagSeq = 0;

function send(res, status, body = '', headers = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': body && typeof body === 'string' ? 'application/xml' : 'application/json',
    'content-length': Buffer.byteLength(payload),
    'x-amz-request-id': 'discard',
    ...headers,
  });
  res.end(payload);
}

function s3Error(res, status, code, message) {
  stats.errors++;
  send(res, status, xml(`<Error><Code>${code}</Code><Message>${esc(message)}</Message></Error>`));
}

/**
 * Reads a body and drops it; resolves with its length, and with the CRC32 (base64, as S3 writes
 * it) when the request carried one to check, and the MD5 (hex) when `md5` is asked for.
 */
function drain(req, { md5 = false } = {}) {
  const wantCrc = typeof req.headers['x-amz-checksum-crc32'] === 'string';
  const hash = md5 ? createHash('md5') : undefined;
  let crc = 0;
  return new Promise((resolve, reject) => {
    let n = 0;
    req.on('data', (chunk) => {
      n += chunk.length;
      if (wantCrc) crc = crc32(chunk, crc);
      hash?.update(chunk);
    });
    req.on('end', () => {
      const out = new Number(n);
      if (wantCrc) {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(crc >>> 0);
        out.crc32 = b.toString('base64');
      }
      if (hash) out.md5 = hash.digest('hex');
      resolve(out);
    });
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('aborted')));
  });
}

/** Reads a small body as text (CompleteMultipartUpload's XML). */
function text(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  stats.requests++;
  const url = new URL(req.url, 'http://x');
  const q = url.searchParams;
  if (url.pathname === '/__stats') {
    await drain(req);
    return send(res, 200, { ...stats, openUploads: uploads.size, objects: objects.size });
  }
  if (url.pathname === '/__reset') {
    await drain(req);
    for (const k of Object.keys(stats)) stats[k] = 0;
    uploads.clear();
    objects.clear();
    return send(res, 200, { ok: true });
  }
  // Path style: /bucket/key...
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  if (!bucket) {
    await drain(req);
    return send(res, 200, xml('<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>'));
  }
  const m = req.method;
  if (m === 'POST' && q.has('uploads')) {
    await drain(req);
    const uploadId = randomUUID();
    uploads.set(uploadId, { key, bytes: 0, parts: 0 });
    stats.creates++;
    return send(
      res,
      200,
      xml(
        `<InitiateMultipartUploadResult><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><UploadId>${uploadId}</UploadId></InitiateMultipartUploadResult>`,
      ),
    );
  }
  if (m === 'PUT' && q.has('partNumber') && q.has('uploadId')) {
    const upload = uploads.get(q.get('uploadId'));
    const n = await drain(req);
    stats.bytes += +n;
    if (!upload) return s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    if (upload.failed) {
      stats.partsAfterFailure++;
      stats.bytesAfterFailure += n;
    }
    if (failPart && Number(q.get('partNumber')) === failPart) {
      upload.failed = true;
      return s3Error(res, 403, 'AccessDenied', `Part ${failPart} refused (--fail-part)`);
    }
    upload.bytes += +n;
    upload.parts++;
    stats.parts++;
    return send(res, 200, '', { etag: etagOf(++etagSeq), ...(n.crc32 ? { 'x-amz-checksum-crc32': n.crc32 } : {}) });
  }
  if (m === 'POST' && q.has('uploadId')) {
    const upload = uploads.get(q.get('uploadId'));
    const body = await text(req);
    if (!upload) return s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    const parts = (body.match(/<PartNumber>/g) ?? []).length;
    uploads.delete(q.get('uploadId'));
    const etag = `"${(++etagSeq).toString(16).padStart(32, '0')}-${parts}"`;
    objects.set(key, { size: upload.bytes, etag });
    stats.completes++;
    return send(
      res,
      200,
      xml(
        `<CompleteMultipartUploadResult><Location>http://discard/${esc(bucket)}/${esc(key)}</Location><Bucket>${esc(bucket)}</Bucket><Key>${esc(key)}</Key><ETag>${esc(etag)}</ETag></CompleteMultipartUploadResult>`,
      ),
    );
  }
  if (m === 'DELETE' && q.has('uploadId')) {
    await drain(req);
    if (!uploads.delete(q.get('uploadId'))) return s3Error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    stats.aborts++;
    return send(res, 204);
  }
  if (m === 'PUT') {
    const n = await drain(req, { md5: true });
    stats.bytes += +n;
    stats.puts++;
    const etag = `"${n.md5}"`;
    objects.set(key, { size: +n, etag });
    return send(res, 200, '', { etag, ...(n.crc32 ? { 'x-amz-checksum-crc32': n.crc32 } : {}) });
  }
  if (m === 'HEAD' || m === 'GET') {
    await drain(req);
    const o = objects.get(key);
    stats.heads++;
    if (!o) return s3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
    // HEAD: headers only. GET is answered like HEAD (no bytes are kept to return).
    res.writeHead(200, { 'content-length': m === 'HEAD' ? o.size : 0, etag: o.etag, 'last-modified': new Date().toUTCString() });
    return res.end();
  }
  if (m === 'DELETE') {
    await drain(req);
    objects.delete(key);
    stats.deletes++;
    return send(res, 204);
  }
  await drain(req);
  return s3Error(res, 405, 'MethodNotAllowed', `${m} is not supported here`);
}

// A large socket high-water mark: fewer, larger reads keep this process's share of the CPU low.
const server = createServer({ highWaterMark: 1024 * 1024, keepAliveTimeout: 30_000 }, (req, res) => {
  if (delayMs > 0 && !req.url.startsWith('/__')) {
    // Answer late: the response is held, the body is read at once.
    const writeHead = res.writeHead.bind(res);
    const end = res.end.bind(res);
    let head;
    res.writeHead = (...a) => ((head = a), res);
    res.end = (...a) => {
      setTimeout(() => {
        if (head) writeHead(...head);
        end(...a);
      }, delayMs);
      return res;
    };
  }
  handle(req, res).catch((err) => {
    stats.errors++;
    if (!res.headersSent) s3Error(res, 500, 'InternalError', String(err?.message ?? err));
    else res.destroy();
  });
});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
