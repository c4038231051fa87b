/**
 * SHA-256 and HMAC-SHA256 for the AWS SDK's SigV4 signers (the `sha256` of an S3 client's
 * config, the client library's signer): the digests of the SDK's own `Sha256Node`, with the
 * HMAC's key handed to Node as a KeyObject.
 *
 * Why: Node 24's `createHmac` asks whether a key given as bytes is a KeyObject, then a
 * CryptoKey, each by reading a private field inside a try/catch, so a byte key costs two thrown
 * TypeErrors, stacks and all. SigV4 signs every request with such a key (the day's signing key).
 * A string key skips both checks; a KeyObject answers the first. Figures: bench/README.md.
 */
import { createHash, createHmac, createSecretKey, type Hash, type Hmac } from 'node:crypto';

/** What the SDK hands a hash: text (UTF-8 unless an encoding is given) or bytes. */
type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}

/** The SDK's `Checksum` (a `HashConstructor` when called with a secret: HMAC-SHA256). */
export class Sha256 {
  readonly digestLength = 32;
  readonly #secret: SourceData | undefined;
  /** As the SDK's Sha256Node: an empty string is no secret, empty bytes are one. */
  readonly #hmac: boolean;
  #hash: Hash | Hmac;
  #finished = false;

  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hmac = !!secret;
    this.#hash = this.#create();
  }

  update(data: SourceData, encoding?: BufferEncoding): void {
    if (this.#finished) throw new Error('Attempted to update an already finished hash.');
    if (typeof data === 'string') this.#hash.update(data, encoding ?? 'utf8');
    else this.#hash.update(bytes(data));
  }

  /** An HMAC is finished by its digest; a plain hash can go on (as the SDK's Sha256Node). */
  digest(): Promise<Uint8Array> {
    let out: Buffer;
    if (!this.#hmac) out = (this.#hash as Hash).copy().digest();
    else {
      this.#finished = true;
      out = this.#hash.digest();
    }
    return Promise.resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
  }

  reset(): void {
    this.#hash = this.#create();
    this.#finished = false;
  }

  #create(): Hash | Hmac {
    const secret = this.#secret;
    if (!this.#hmac || secret === undefined) return createHash('sha256');
    if (typeof secret === 'string') return createHmac('sha256', secret);
    // createSecretKey refuses an empty key; the empty string is the same key.
    return createHmac('sha256', secret.byteLength === 0 ? '' : createSecretKey(bytes(secret)));
  }
}
