/**
 * A stand-in for AWS Systems Manager Parameter Store on loopback: SSM's JSON 1.1 protocol
 * (`POST /`, `X-Amz-Target: AmazonSSM.GetParameter`), answering only requests whose SigV4
 * signature, recomputed here with @smithy/signature-v4 from the known credentials, matches.
 * It records every call so tests can count them.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';

export const SSM_CREDENTIALS = { accessKeyId: 'AKIDSSMSTANDIN', secretAccessKey: 'ssm-stand-in-secret-key' };
export const SSM_REGION = 'eu-west-1';

export interface SsmCall {
  target: string | undefined;
  name: unknown;
  withDecryption: unknown;
  signed: boolean;
}

export interface SsmStandIn {
  endpoint: string;
  calls: SsmCall[];
  close(): Promise<void>;
}

// The Checksum interface SignatureV4 wants, over node:crypto.
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(toBuffer(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.hash.digest());
  }
}

function toBuffer(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

type Credentials = typeof SSM_CREDENTIALS;

/** Recomputes the request's signature over the headers it says it signed. */
async function verifySignature(req: IncomingMessage, body: Buffer, credentials: Credentials): Promise<boolean> {
  const signer = new SignatureV4({ credentials, region: SSM_REGION, service: 'ssm', sha256: Sha256 });
  const authorization = req.headers.authorization ?? '';
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      authorization,
    );
  const amzDate = req.headers['x-amz-date'];
  if (!m || typeof amzDate !== 'string' || m[1] !== credentials.accessKeyId || m[3] !== SSM_REGION || m[4] !== 'ssm') {
    return false;
  }
  const signedHeaders = m[5]!.split(';');
  if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-target')) return false;
  const headers: Record<string, string> = {};
  for (const name of signedHeaders) {
    const value = req.headers[name];
    if (typeof value !== 'string') return false;
    headers[name] = value;
  }
  const signingDate = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const expected = await signer.sign(
    {
      method: req.method ?? 'GET',
      protocol: 'http:',
      hostname: '127.0.0.1',
      path: req.url ?? '/',
      query: {},
      headers,
      body: body.toString('utf8'),
    },
    { signingDate },
  );
  return expected.headers['authorization'] === authorization;
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(body));
}

/** `parameters`: name -> decrypted value, served as SecureString. */
export async function startSsmStandIn(
  parameters: Record<string, string>,
  credentials: Credentials = SSM_CREDENTIALS,
): Promise<SsmStandIn> {
  const calls: SsmCall[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const target = req.headers['x-amz-target'] as string | undefined;
        const signed = await verifySignature(req, body, credentials);
        let input: { Name?: unknown; WithDecryption?: unknown } = {};
        try {
          input = JSON.parse(body.toString('utf8')) as typeof input;
        } catch {
          // recorded as is; answered below
        }
        calls.push({ target, name: input.Name, withDecryption: input.WithDecryption, signed });
        if (!signed) return answer(res, 400, { __type: 'InvalidSignatureException', message: 'signature mismatch' });
        if (req.method !== 'POST' || target !== 'AmazonSSM.GetParameter') {
          return answer(res, 400, { __type: 'UnknownOperationException' });
        }
        const value = typeof input.Name === 'string' ? parameters[input.Name] : undefined;
        if (value === undefined) return answer(res, 400, { __type: 'ParameterNotFound', message: '' });
        const encrypted = input.WithDecryption !== true;
        return answer(res, 200, {
          Parameter: {
            Name: input.Name,
            Type: 'SecureString',
            // Without WithDecryption SSM returns the ciphertext, never the value.
            Value: encrypted ? Buffer.from(`ciphertext:${value}`).toString('base64') : value,
            Version: 1,
            ARN: `arn:aws:ssm:${SSM_REGION}:111122223333:parameter${String(input.Name)}`,
            DataType: 'text',
          },
        });
      })();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
