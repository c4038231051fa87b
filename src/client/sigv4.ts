/**
 * AWS Signature Version 4 for the calls to the service (a Function URL with `AWS_IAM` auth,
 * or an API Gateway REST API with `aws_iam` authorizers), with the AWS SDK's own signer and
 * default credential chain: no hand-written crypto (Node's, through src/sha256.ts).
 *
 * The payload hash is always real and sent as `x-amz-content-sha256`: Lambda checks it for
 * requests with a body, and `UNSIGNED-PAYLOAD` is not accepted there. Callers compute it
 * from the bytes they will send (see `sha256Hex` and the streamed variant in index.ts).
 */
import { createHash } from 'node:crypto';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { Sha256 } from '../sha256.ts';
import { UploadClientError } from './errors.ts';

/** AWS credentials (the shape of the SDK's `AwsCredentialIdentity`). */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** When temporary credentials expire; a provider is asked again before then. */
  expiration?: Date;
}

/** Resolves credentials; called for every request (the SDK's providers cache and refresh). */
export type AwsCredentialsProvider = () => Promise<AwsCredentials>;

export interface SigV4Options {
  /** AWS region of the endpoint, e.g. `eu-west-1`. */
  region: string;
  /** Signing name: `lambda` for a Function URL, `execute-api` for API Gateway. Default `lambda`. */
  service?: string;
  /**
   * Credentials or a provider of them. Default: the AWS SDK's default chain
   * (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, `AWS_PROFILE` and
   * ~/.aws files, SSO, web identity, ECS and EC2 instance roles).
   */
  credentials?: AwsCredentials | AwsCredentialsProvider;
}

/** What a signed call needs besides its own headers. */
export interface SignInput {
  method: string;
  url: string;
  headers: Record<string, string>;
  /** SHA-256 of the exact body bytes, lowercase hex (of the empty string when there is none). */
  payloadHash: string;
}

/** Returns the headers to send: the given ones plus authorization, x-amz-date, x-amz-content-sha256 (and the session token). */
export type SignRequest = (input: SignInput) => Promise<Record<string, string>>;

export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Region and signing name from an AWS endpoint's host: `<id>.lambda-url.<region>.on.aws` is a
 * Function URL (`lambda`), `<id>.execute-api.<region>.amazonaws.com` an API Gateway
 * (`execute-api`). Anything else (a custom domain) needs them spelled out.
 */
export function inferSigV4(url: string): { region: string; service: string } {
  const host = new URL(url).hostname.toLowerCase();
  const lambda = /^[a-z0-9]+\.lambda-url\.([a-z0-9-]+)\.on\.aws$/.exec(host);
  if (lambda) return { region: lambda[1]!, service: 'lambda' };
  const api = /^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(host);
  if (api) return { region: api[1]!, service: 'execute-api' };
  throw new UploadClientError(
    'INVALID_OPTIONS',
    `Cannot infer the SigV4 region and service from ${host}: give them (sigv4: { region, service }, --sigv4 REGION:SERVICE)`,
  );
}

/** A signer for `options`, or for the region and service `url`'s host implies when `true`. */
export function createSigner(options: SigV4Options | true, url: string): SignRequest {
  const { region, service = 'lambda', credentials }: SigV4Options = options === true ? inferSigV4(url) : options;
  const signer = new SignatureV4({
    region,
    service,
    credentials: credentials ?? defaultProvider(),
    sha256: Sha256,
    // Every service but S3 signs the doubly-encoded path (the SDK's default).
    uriEscapePath: true,
    applyChecksum: true,
  });
  return async ({ method, url: target, headers, payloadHash }) => {
    const u = new URL(target);
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of u.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    let signed;
    try {
      signed = await signer.sign({
        method,
        protocol: u.protocol,
        hostname: u.hostname,
        ...(u.port ? { port: Number(u.port) } : {}),
        path: u.pathname,
        query,
        // fetch sends Host itself, with this very value; it must be signed.
        headers: { ...headers, host: u.host, 'x-amz-content-sha256': payloadHash },
      });
    } catch (err) {
      throw new UploadClientError(
        'INVALID_OPTIONS',
        `Cannot sign the request: ${err instanceof Error ? err.message : String(err)}`,
        {
          cause: err,
        },
      );
    }
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(signed.headers)) if (k.toLowerCase() !== 'host') out[k] = String(v);
    return out;
  };
}
