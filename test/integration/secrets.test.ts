/**
 * The session secret read at run time from SSM Parameter Store (SecureString, decrypted),
 * against a loopback stand-in that speaks SSM's JSON protocol and checks SigV4 signatures:
 * the reader module directly, then the shipped Lambda bundle at cold start, pointed at the
 * stand-in with the SDK's own `AWS_ENDPOINT_URL_SSM`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restEvent } from '../../scripts/make-events.mjs';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { createSecretReader, loadSessionSecret } from '../../src/secrets.ts';
import { createLogger } from '../../src/logger.ts';
import { startServer } from '../../src/server.ts';
import { closeFunctions, invoke, loadFunction } from '../helpers/lambda.ts';
import { S3RVER_CREDENTIALS, startS3rver, type TestS3rver } from '../helpers/s3rver.ts';
import { SSM_CREDENTIALS, SSM_REGION, startSsmStandIn, type SsmStandIn } from '../helpers/ssm-stand-in.ts';

const NAME = '/s3-stream-upload/test/session-secret';
const SECRET = 'from-ssm-secure-string-0123456789abcdef';

let ssm: SsmStandIn;

beforeAll(async () => {
  ssm = await startSsmStandIn({ [NAME]: SECRET, '/short': 'too-short' });
});
afterAll(() => ssm.close());

const clientConfig = () => ({ endpoint: ssm.endpoint, region: SSM_REGION, credentials: SSM_CREDENTIALS });

async function initError(promise: Promise<unknown>): Promise<ConfigError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe('createSecretReader', () => {
  it('reads the decrypted value with one signed GetParameter call', async () => {
    const before = ssm.calls.length;
    await expect(createSecretReader(NAME, { clientConfig: clientConfig() }).read()).resolves.toBe(SECRET);
    expect(ssm.calls.slice(before)).toEqual([
      { target: 'AmazonSSM.GetParameter', name: NAME, withDecryption: true, signed: true },
    ]);
  });

  it('serves reads within the max age from its cache, then asks again', async () => {
    const reader = createSecretReader(NAME, { clientConfig: clientConfig(), maxAgeSeconds: 1 });
    const before = ssm.calls.length;
    const values = await Promise.all([reader.read(), reader.read()]);
    values.push(await reader.read(), await reader.read());
    expect(values).toEqual([SECRET, SECRET, SECRET, SECRET]);
    // Two concurrent first reads may both miss the cache; sequential ones never do.
    const firstRound = ssm.calls.length - before;
    expect(firstRound).toBeGreaterThanOrEqual(1);
    expect(firstRound).toBeLessThanOrEqual(2);
    await reader.read();
    expect(ssm.calls.length - before).toBe(firstRound);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await reader.read();
    expect(ssm.calls.length - before).toBe(firstRound + 1);
  });

  it('fails with a message naming the variable and the parameter when it does not exist', async () => {
    const err = await initError(createSecretReader('/nope/session-secret', { clientConfig: clientConfig() }).read());
    expect(err.problems).toEqual([
      expect.stringMatching(
        /^UPLOAD_SESSION_SECRET_PARAM: SSM parameter "\/nope\/session-secret" does not exist \(create it: aws ssm put-parameter --type SecureString/,
      ),
    ]);
  });

  it('is refused by the stand-in when signed with other credentials', async () => {
    const before = ssm.calls.length;
    const err = await initError(
      createSecretReader(NAME, {
        clientConfig: { ...clientConfig(), credentials: { accessKeyId: SSM_CREDENTIALS.accessKeyId, secretAccessKey: 'wrong' } },
      }).read(),
    );
    expect(err.problems).toEqual([
      `UPLOAD_SESSION_SECRET_PARAM: cannot read SSM parameter "${NAME}": InvalidSignatureException (HTTP 400)`,
    ]);
    expect(ssm.calls.slice(before).every((c) => !c.signed)).toBe(true);
  });

  it('refuses a value shorter than 32 characters without printing it', async () => {
    const err = await initError(createSecretReader('/short', { clientConfig: clientConfig() }).read());
    expect(err.message).toMatch(/SSM parameter "\/short" must be at least 32 characters/);
    expect(err.message).not.toContain('too-short');
  });
});

describe('loadSessionSecret', () => {
  it('takes UPLOAD_SESSION_SECRET as given and asks SSM nothing', async () => {
    const before = ssm.calls.length;
    await expect(loadSessionSecret(loadConfig({ UPLOAD_SESSION_SECRET: 's'.repeat(32) }))).resolves.toBe('s'.repeat(32));
    await expect(loadSessionSecret(loadConfig({}))).resolves.toBeUndefined();
    expect(ssm.calls.length).toBe(before);
  });

  it('reads UPLOAD_SESSION_SECRET_PARAM in the configured region', async () => {
    const config = loadConfig({ UPLOAD_SESSION_SECRET_PARAM: NAME, AWS_REGION: SSM_REGION });
    await expect(
      loadSessionSecret(config, { clientConfig: { endpoint: ssm.endpoint, credentials: SSM_CREDENTIALS } }),
    ).resolves.toBe(SECRET);
  });
});

describe('the Lambda function at cold start, and the Node server at start', () => {
  let s3: TestS3rver;
  let fnSsm: SsmStandIn;
  let lambdaSessionId = '';

  beforeAll(async () => {
    s3 = await startS3rver();
    // The function signs S3 and SSM calls with the same credentials from its environment.
    fnSsm = await startSsmStandIn({ [NAME]: SECRET }, S3RVER_CREDENTIALS);
  });
  afterAll(async () => {
    await closeFunctions();
    await fnSsm.close();
    await s3.close();
  });

  const env = (param: string) => ({
    UPLOAD_BUCKET: s3.bucket,
    S3_ENDPOINT: s3.endpoint,
    AWS_REGION: SSM_REGION,
    AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_SSM: fnSsm.endpoint,
    UPLOAD_SESSION_SECRET_PARAM: param,
    LOG_LEVEL: 'silent',
  });

  it('reads the secret once and serves the session routes with it', async () => {
    const before = fnSsm.calls.length;
    const handler = await loadFunction(env(NAME));
    const body = Buffer.from(
      JSON.stringify({ filename: 'a.bin', size: 6 * 1024 * 1024, contentType: 'application/octet-stream' }),
    );
    const created = await invoke(
      handler,
      restEvent({ method: 'POST', path: '/uploads/sessions', headers: { 'content-type': 'application/json' }, body }),
    );
    expect(created.statusCode, created.body).toBe(201);
    // The process started at this first invocation and read the parameter in its init.
    expect(created.coldStart).toBe(true);
    expect(fnSsm.calls.slice(before)).toEqual([
      { target: 'AmazonSSM.GetParameter', name: NAME, withDecryption: true, signed: true },
    ]);
    const { sessionId } = JSON.parse(created.body) as { sessionId: string };
    lambdaSessionId = sessionId;
    // The id is signed with the secret: the function accepts it back on another route.
    const more = await invoke(
      handler,
      restEvent({
        method: 'POST',
        path: `/uploads/sessions/${sessionId}/parts`,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ partNumbers: [2] })),
      }),
    );
    expect(more.statusCode, more.body).toBe(200);
    expect(fnSsm.calls.length - before).toBe(1);
  });

  it('the Node server reads the same secret: it accepts a session id the function signed', async () => {
    expect(lambdaSessionId).not.toBe('');
    const before = fnSsm.calls.length;
    const environment = env(NAME);
    // The SDK itself reads AWS_ENDPOINT_URL_SSM and the credentials from the environment.
    Object.assign(process.env, environment);
    const running = await startServer(loadConfig({ ...environment, PORT: '0' }), { logger: createLogger('silent') });
    try {
      expect(fnSsm.calls.length - before).toBe(1);
      const res = await fetch(`${running.url}/uploads/sessions/${lambdaSessionId}/parts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ partNumbers: [1] }),
      });
      expect(res.status, await res.clone().text()).toBe(200);
    } finally {
      await running.close();
    }
  });

  it('fails its init with a message naming the missing parameter', async () => {
    const handler = await loadFunction(env('/s3-stream-upload/test/missing'));
    const res = await invoke(handler, restEvent({ method: 'POST', path: '/uploads/sessions' }));
    expect(res.initError?.errorMessage).toMatch(
      /UPLOAD_SESSION_SECRET_PARAM: SSM parameter "\/s3-stream-upload\/test\/missing" does not exist/,
    );
  });
});
