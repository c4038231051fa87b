// Writes events/*.json: API Gateway REST (payload 1.0) and Function URL (payload 2.0) events
// with real base64 multipart bodies, plus events/manifest.json with what each one must
// produce (status, error code, files with their SHA-256). Deterministic: same bytes every run.
//
//   node scripts/make-events.mjs
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const OUT = fileURLToPath(new URL('../events/', import.meta.url));
const BOUNDARY = '----s3su-event-boundary-q1w2e3r4';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

/** Deterministic bytes (xorshift32), so the events never change between runs. */
function bytes(size, seed) {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function multipart(parts) {
  const chunks = [];
  for (const p of parts) {
    if (p.value !== undefined) {
      chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n${p.value}\r\n`));
    } else {
      const star = p.filenameStar ? `; filename*=${p.filenameStar}` : '';
      chunks.push(
        Buffer.from(
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"${star}\r\n` +
            `Content-Type: ${p.contentType ?? 'application/octet-stream'}\r\n\r\n`,
        ),
        p.data,
        Buffer.from('\r\n'),
      );
    }
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const sha256 = (b) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

const csv = bytes(20_000, 1);
const photo = bytes(300_000, 2);
const utf8 = bytes(1234, 3);
// A 4 KiB random block repeated (each copy stamped with its index): distinct parts for S3,
// yet git stores the 6 MB event compressed to a fraction of it.
const large = Buffer.alloc(Math.floor(4.3 * MiB));
const block = bytes(4096, 4);
for (let off = 0, i = 0; off < large.length; off += 4096, i++) {
  block.copy(large, off);
  if (off + 4 <= large.length) large.writeUInt32LE(i, off);
}

/** name -> { body, contentType, expect } */
const CASES = {
  'two-files': {
    contentType: MULTIPART,
    body: multipart([
      { name: 'owner', value: 'billing-service' },
      { name: 'report', filename: 'report.csv', data: csv, contentType: 'text/csv' },
      { name: 'photo', filename: 'photo.jpg', data: photo, contentType: 'image/jpeg' },
      { name: 'batch', value: '2026-11' },
    ]),
    expect: {
      status: 201,
      fields: { owner: 'billing-service', batch: '2026-11' },
      files: [
        { field: 'report', filename: 'report.csv', size: csv.length, contentType: 'text/csv', sha256: sha256(csv) },
        { field: 'photo', filename: 'photo.jpg', size: photo.length, contentType: 'image/jpeg', sha256: sha256(photo) },
      ],
    },
  },
  'utf8-filename': {
    contentType: MULTIPART,
    body: multipart([
      {
        name: 'doc',
        filename: 'resume.pdf',
        filenameStar: "UTF-8''R%C3%A9sum%C3%A9%20%E2%80%94%20%E6%97%A5%E6%9C%AC.pdf",
        data: utf8,
        contentType: 'application/pdf',
      },
    ]),
    expect: {
      status: 201,
      fields: {},
      files: [
        { field: 'doc', filename: 'Résumé — 日本.pdf', size: utf8.length, contentType: 'application/pdf', sha256: sha256(utf8) },
      ],
    },
  },
  // About the largest body a 6 MB Lambda payload can carry once base64-encoded.
  'large-4mb': {
    contentType: MULTIPART,
    body: multipart([{ name: 'file', filename: 'large.bin', data: large }]),
    expect: {
      status: 201,
      fields: {},
      files: [
        {
          field: 'file',
          filename: 'large.bin',
          size: large.length,
          contentType: 'application/octet-stream',
          sha256: sha256(large),
        },
      ],
    },
  },
  // Above the default UPLOAD_LAMBDA_MAX_BODY_BYTES (6 MiB). Zeros: git stores it in a few KB.
  'too-large': {
    contentType: MULTIPART,
    body: multipart([{ name: 'file', filename: 'zeros.bin', data: Buffer.alloc(6 * MiB + 1024) }]),
    expect: { status: 413, code: 'PAYLOAD_TOO_LARGE' },
  },
  'not-multipart': {
    contentType: 'application/json',
    body: Buffer.from(JSON.stringify({ file: 'not a multipart body' })),
    expect: { status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' },
  },
  // Cut in the middle of the file part: no closing boundary.
  malformed: {
    contentType: MULTIPART,
    body: multipart([{ name: 'file', filename: 'cut.bin', data: bytes(5000, 5) }]).subarray(0, 3000),
    expect: { status: 400, code: 'MALFORMED_MULTIPART' },
  },
};

/** An API Gateway REST proxy event (payload format 1.0). */
export function restEvent({
  method = 'POST',
  path = '/uploads',
  headers = {},
  body = Buffer.alloc(0),
  requestId = 'rest-request',
  caller = CALLER_ARN,
}) {
  const all = {
    Accept: 'application/json',
    Host: 'a1b2c3d4e5.execute-api.us-east-1.amazonaws.com',
    'User-Agent': 'billing-service/1.4',
    'x-api-key': 'redacted-api-key',
    ...headers,
  };
  return {
    resource: path,
    path,
    httpMethod: method,
    headers: all,
    multiValueHeaders: Object.fromEntries(Object.entries(all).map(([k, v]) => [k, [v]])),
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    pathParameters: null,
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'a1b2c3d4e5',
      resourceId: 'abc123',
      resourcePath: path,
      httpMethod: method,
      path: `/dev${path}`,
      stage: 'dev',
      protocol: 'HTTP/1.1',
      requestId,
      requestTimeEpoch: 1795000000000,
      // What API Gateway passes for an `aws_iam` route called by an assumed role (with an API key).
      identity: {
        sourceIp: '203.0.113.7',
        userAgent: 'billing-service/1.4',
        apiKey: 'redacted-api-key',
        ...(caller
          ? {
              apiKeyId: 'k1a2b3c4d5',
              accountId: '111122223333',
              accessKey: 'ASIAEXAMPLEACCESSKEY',
              caller: 'AROAEXAMPLEROLEID:billing-job',
              user: 'AROAEXAMPLEROLEID:billing-job',
              userArn: caller,
            }
          : {}),
      },
    },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

/** The IAM principal that signed the sample events. */
export const CALLER_ARN = 'arn:aws:sts::111122223333:assumed-role/billing/billing-job';

/** A Lambda Function URL event (payload format 2.0); header names arrive lowercased. */
export function urlEvent({
  method = 'POST',
  path = '/uploads',
  headers = {},
  body = Buffer.alloc(0),
  requestId = 'url-request',
  caller = CALLER_ARN,
}) {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: {
      accept: 'application/json',
      host: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws',
      'user-agent': 'billing-service/1.4',
      'x-amz-date': '20261126T050000Z',
      ...lower,
    },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abcdefghijklmnopqrstuvwxyz123456',
      domainName: 'abcdefghijklmnopqrstuvwxyz123456.lambda-url.us-east-1.on.aws',
      domainPrefix: 'abcdefghijklmnopqrstuvwxyz123456',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '203.0.113.7', userAgent: 'billing-service/1.4' },
      requestId,
      // What a Function URL with AuthType AWS_IAM passes for the signing principal.
      ...(caller
        ? {
            authorizer: {
              iam: {
                accessKey: 'ASIAEXAMPLEACCESSKEY',
                accountId: '111122223333',
                callerId: 'AROAEXAMPLEROLEID:billing-job',
                cognitoIdentity: null,
                principalOrgId: null,
                userArn: caller,
                userId: 'AROAEXAMPLEROLEID:billing-job',
              },
            },
          }
        : {}),
      routeKey: '$default',
      stage: '$default',
      time: '26/Nov/2026:05:00:00 +0000',
      timeEpoch: 1795000000000,
    },
    body: body.toString('base64'),
    isBase64Encoded: true,
  };
}

function writeEvents() {
  mkdirSync(OUT, { recursive: true });
  const manifest = {};
  for (const [name, c] of Object.entries(CASES)) {
    const spec = { headers: { 'Content-Type': c.contentType, 'X-Correlation-Id': `corr-${name}` }, body: c.body };
    for (const [kind, make] of [
      ['rest', restEvent],
      ['url', urlEvent],
    ]) {
      const file = `${kind}-${name}.json`;
      writeFileSync(OUT + file, JSON.stringify(make({ ...spec, requestId: `${kind}-${name}` }), null, 2) + '\n');
      manifest[file] = { payloadFormat: kind === 'rest' ? '1.0' : '2.0', bodyBytes: c.body.length, ...c.expect };
    }
  }
  writeFileSync(OUT + 'manifest.json', JSON.stringify(manifest, null, 2) + '\n');
  console.log(`wrote ${Object.keys(manifest).length} events to events/`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) writeEvents();
