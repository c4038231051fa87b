import * as crypto from 'node:crypto';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterEach, describe, expect, it, vi } from 'vitest';

// Every createHmac call of the module under test, with the key it was given.
const hmacKeys: unknown[] = [];
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    createHmac: (algorithm: string, key: crypto.BinaryLike | crypto.KeyObject) => {
      hmacKeys.push(key);
      return actual.createHmac(algorithm, key);
    },
  };
});

const { Sha256 } = await import('../../src/sha256.ts');
const { createS3Client } = await import('../../src/storage/s3-client.ts');

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

/** The SDK's own hash (the one the signer used before), for the same inputs. */
async function sdkDigest(secret: ConstructorParameters<typeof Hash>[1], ...chunks: (string | Uint8Array)[]) {
  const h = new Hash('sha256', secret);
  for (const c of chunks) h.update(c);
  return hex(await h.digest());
}

async function ours(secret: ConstructorParameters<typeof Sha256>[0], ...chunks: (string | Uint8Array)[]) {
  const h = new Sha256(secret);
  for (const c of chunks) h.update(c);
  return hex(await h.digest());
}

afterEach(() => {
  hmacKeys.length = 0;
});

describe('Sha256 (SigV4 hashes for the SDK)', () => {
  it('gives the digests of Node and of the SDK for every kind of secret', async () => {
    const key = crypto.randomBytes(40);
    // A view into a larger buffer: only its own bytes are the key.
    const view = Buffer.concat([Buffer.from('xx'), key, Buffer.from('yy')]).subarray(2, 42);
    const arrayBuffer = key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength);
    const expected = crypto.createHmac('sha256', key).update('abc').update('déf').digest('hex');
    for (const secret of [key, new Uint8Array(key), view, arrayBuffer]) {
      expect(await ours(secret, 'abc', 'déf')).toBe(expected);
    }
    expect(await sdkDigest(key, 'abc', 'déf')).toBe(expected);

    expect(await ours('AWS4secret', 'day')).toBe(crypto.createHmac('sha256', 'AWS4secret').update('day').digest('hex'));
    expect(await ours(undefined, 'abc', Buffer.from([0, 255]))).toBe(
      crypto
        .createHash('sha256')
        .update('abc')
        .update(Buffer.from([0, 255]))
        .digest('hex'),
    );
    // As the SDK's: an empty string is no secret, empty bytes an empty key.
    expect(await ours('', 'abc')).toBe(crypto.createHash('sha256').update('abc').digest('hex'));
    expect(await ours(new Uint8Array(0), 'abc')).toBe(crypto.createHmac('sha256', '').update('abc').digest('hex'));
  });

  it('never hands Node an HMAC key as bytes (Node 24 makes those slow)', async () => {
    await ours(crypto.randomBytes(32), 'a');
    await ours('string key', 'a');
    expect(hmacKeys).toHaveLength(2);
    expect(hmacKeys[0]).toBeInstanceOf(crypto.KeyObject);
    expect(typeof hmacKeys[1]).toBe('string');
  });

  it('decodes text with the encoding asked for', async () => {
    const h = new Sha256();
    h.update('00ff', 'hex' as BufferEncoding);
    expect(hex(await h.digest())).toBe(
      crypto
        .createHash('sha256')
        .update(Buffer.from([0, 255]))
        .digest('hex'),
    );
  });

  it('finishes an HMAC at its digest; a plain hash goes on; reset starts over', async () => {
    const mac = new Sha256('k');
    mac.update('a');
    await mac.digest();
    expect(() => mac.update('b')).toThrow(/finished/);
    mac.reset();
    mac.update('b');
    expect(hex(await mac.digest())).toBe(crypto.createHmac('sha256', 'k').update('b').digest('hex'));

    const plain = new Sha256();
    plain.update('a');
    expect(hex(await plain.digest())).toBe(crypto.createHash('sha256').update('a').digest('hex'));
    plain.update('b');
    expect(hex(await plain.digest())).toBe(crypto.createHash('sha256').update('ab').digest('hex'));
  });

  it('signs as the SDK signs with its own hash', async () => {
    const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
    const request = {
      method: 'PUT',
      protocol: 'https:',
      hostname: 'bucket.s3.eu-west-1.amazonaws.com',
      path: '/a/b.txt',
      headers: { host: 'bucket.s3.eu-west-1.amazonaws.com', 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      query: {},
    };
    const signingDate = new Date('2026-12-02T10:00:00Z');
    const sign = (sha256: ConstructorParameters<typeof SignatureV4>[0]['sha256']) =>
      new SignatureV4({ region: 'eu-west-1', service: 's3', credentials, sha256, uriEscapePath: false }).sign(
        structuredClone(request),
        { signingDate },
      );
    const [theirs, mine] = await Promise.all([sign(Hash.bind(null, 'sha256')), sign(Sha256)]);
    expect(mine.headers['authorization']).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261202\/eu-west-1\/s3/);
    expect(mine.headers['authorization']).toBe(theirs.headers['authorization']);
  });

  it('is the hash of every S3 client the service makes', () => {
    const client = createS3Client({ region: 'eu-west-1', forcePathStyle: false, checksumCalculation: 'WHEN_REQUIRED' } as never);
    expect(client.config.sha256).toBe(Sha256);
    client.destroy();
  });
});
