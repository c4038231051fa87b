import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseBytes } from '../../src/config.ts';

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('has a default for everything and an embedded S3 when none is configured', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      logLevel: 'info',
      keyPrefix: 'uploads/',
      limits: { maxFileBytes: 5 * 2 ** 30, maxFiles: 10, maxFields: 100, maxFieldBytes: 65536, maxTotalBytes: 10 * 2 ** 30 },
      s3: {
        embedded: true,
        bucket: 'uploads',
        endpoint: undefined,
        partBytes: 5 * 2 ** 20,
        queueSize: 4,
        unsignedPayload: undefined,
        region: 'us-east-1',
        checksumCalculation: 'WHEN_REQUIRED',
        readBack: 'auto',
      },
      lambda: { maxBodyBytes: 6 * 2 ** 20, deadlineMarginMs: 3000 },
      timeouts: { headersMs: 30_000, idleMs: 120_000, drainMs: 25_000 },
      memory: { budgetBytes: 40 * 2 ** 20, maxWaiting: 1024, gcEveryBytes: 4 * 2 ** 20 },
      allowedTypes: undefined,
      sha256: 'requested',
      authTokens: {},
      prefixByCaller: false,
    });
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.limits)).toBe(true);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      PORT: '8080',
      HOST: '0.0.0.0',
      LOG_LEVEL: 'DEBUG',
      UPLOAD_BUCKET: 'my-bucket',
      UPLOAD_KEY_PREFIX: 'in/',
      S3_ENDPOINT: 'http://127.0.0.1:7480',
      S3_FORCE_PATH_STYLE: 'false',
      AWS_REGION: 'eu-west-1',
      UPLOAD_MAX_FILE_BYTES: '100MiB',
      UPLOAD_MAX_FILES: '2',
      UPLOAD_MAX_FIELDS: '3',
      UPLOAD_MAX_FIELD_BYTES: '1KiB',
      UPLOAD_MAX_TOTAL_BYTES: '1GB',
      S3_PART_BYTES: '16MiB',
      S3_QUEUE_SIZE: '8',
      AWS_REQUEST_CHECKSUM_CALCULATION: 'when_supported',
      UPLOAD_LAMBDA_MAX_BODY_BYTES: '5MB',
      UPLOAD_DEADLINE_MARGIN_MS: '1500',
      S3_UNSIGNED_PAYLOAD: 'true',
      UPLOAD_SHA256: 'always',
      UPLOAD_GC_EVERY_BYTES: '8MiB',
    });
    expect(c).toMatchObject({
      port: 8080,
      host: '0.0.0.0',
      logLevel: 'debug',
      keyPrefix: 'in/',
      limits: { maxFileBytes: 100 * 2 ** 20, maxFiles: 2, maxFields: 3, maxFieldBytes: 1024, maxTotalBytes: 1e9 },
      s3: {
        embedded: false,
        bucket: 'my-bucket',
        endpoint: 'http://127.0.0.1:7480',
        forcePathStyle: false,
        region: 'eu-west-1',
        partBytes: 16 * 2 ** 20,
        queueSize: 8,
        unsignedPayload: true,
        checksumCalculation: 'WHEN_SUPPORTED',
      },
      lambda: { maxBodyBytes: 5e6, deadlineMarginMs: 1500 },
      sha256: 'always',
      memory: { gcEveryBytes: 8 * 2 ** 20 },
    });
  });

  it('defaults depend on the endpoint: path style and WHEN_REQUIRED checksums for custom S3', () => {
    expect(loadConfig({ UPLOAD_BUCKET: 'b-1' }).s3).toMatchObject({
      embedded: false,
      forcePathStyle: false,
      checksumCalculation: 'WHEN_SUPPORTED',
    });
    expect(loadConfig({ UPLOAD_BUCKET: 'b-1', S3_ENDPOINT: 'http://x:1' }).s3).toMatchObject({
      forcePathStyle: true,
      checksumCalculation: 'WHEN_REQUIRED',
    });
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a whole number'],
    [{ PORT: '70000' }, 'PORT must be between 0 and 65535'],
    [{ S3_PART_BYTES: '1MiB' }, 'S3_PART_BYTES must be between 5242880'],
    [{ S3_PART_BYTES: 'lots' }, 'S3_PART_BYTES must be a byte size'],
    [{ S3_QUEUE_SIZE: '0' }, 'S3_QUEUE_SIZE must be between 1 and 64'],
    [{ UPLOAD_MAX_FILES: '-1' }, 'UPLOAD_MAX_FILES must be a whole number'],
    [{ UPLOAD_MAX_FILE_BYTES: '10TB' }, 'raise S3_PART_BYTES to at least 1000000000'],
    [{ S3_FORCE_PATH_STYLE: 'maybe' }, 'S3_FORCE_PATH_STYLE must be true or false'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL must be one of debug, info, warn, error, silent'],
    [{ AWS_REQUEST_CHECKSUM_CALCULATION: 'NEVER' }, 'AWS_REQUEST_CHECKSUM_CALCULATION must be one of'],
    [{ S3_ENDPOINT: 'localhost:9000', UPLOAD_BUCKET: 'b-1' }, 'S3_ENDPOINT must be an http(s) URL'],
    [{ S3_ENDPOINT: 'http://localhost:9000' }, 'UPLOAD_BUCKET is required when S3_ENDPOINT is set'],
    [{ UPLOAD_BUCKET: 'Bad_Bucket' }, 'UPLOAD_BUCKET must be a valid S3 bucket name'],
    [{ UPLOAD_KEY_PREFIX: '/abs/' }, 'UPLOAD_KEY_PREFIX must not start with "/"'],
    [{ UPLOAD_KEY_PREFIX: 'a/../b/' }, 'UPLOAD_KEY_PREFIX must not start with "/"'],
    [{ UPLOAD_AUTH_TOKEN: 'short' }, 'UPLOAD_AUTH_TOKEN must be at least 16 characters'],
    [
      { UPLOAD_ALLOWED_TYPES: 'image/png,png' },
      'UPLOAD_ALLOWED_TYPES must list content types such as image/png or image/*, got "png"',
    ],
    [{ UPLOAD_MEMORY_BYTES: 'lots' }, 'UPLOAD_MEMORY_BYTES must be a byte size'],
    [{ UPLOAD_HEADERS_TIMEOUT_MS: '5' }, 'UPLOAD_HEADERS_TIMEOUT_MS must be between 100 and 600000'],
    [{ S3_READ_BACK: 'never' }, 'S3_READ_BACK must be one of auto, always'],
    [{ UPLOAD_MEMORY_BYTES: '1MiB' }, 'UPLOAD_MEMORY_BYTES (1048576) must be 0 or at least S3_PART_BYTES (5242880)'],
    [
      { UPLOAD_MEMORY_BYTES: '8MiB', S3_PART_BYTES: '16MiB' },
      'UPLOAD_MEMORY_BYTES (8388608) must be 0 or at least S3_PART_BYTES',
    ],
    [{ UPLOAD_SHA256: 'sometimes' }, 'UPLOAD_SHA256 must be one of requested, always'],
    [{ UPLOAD_GC_EVERY_BYTES: '-1' }, 'UPLOAD_GC_EVERY_BYTES must be a byte size'],
    [{ S3_UNSIGNED_PAYLOAD: 'maybe' }, 'S3_UNSIGNED_PAYLOAD must be true or false'],
  ])('refuses %j naming the variable', (env, message) => {
    expect(problems(env as Record<string, string>).join('\n')).toContain(message);
  });

  it('reports every bad variable at once', () => {
    expect(problems({ PORT: 'x', S3_QUEUE_SIZE: '999', LOG_LEVEL: 'nope' })).toHaveLength(3);
  });

  it('requires a bucket where there is no embedded S3 (Lambda)', () => {
    expect(() => loadConfig({}, { requireBucket: true })).toThrow(/UPLOAD_BUCKET is required/);
    expect(loadConfig({ UPLOAD_BUCKET: 'b-1' }, { requireBucket: true }).s3.embedded).toBe(false);
  });

  it('reads the allowlist, memory budget and timeouts', () => {
    const c = loadConfig({
      UPLOAD_ALLOWED_TYPES: ' Image/PNG, image/* ,application/pdf',
      UPLOAD_MEMORY_BYTES: '0',
      UPLOAD_MEMORY_QUEUE: '5',
      UPLOAD_HEADERS_TIMEOUT_MS: '1000',
      UPLOAD_IDLE_TIMEOUT_MS: '2000',
      UPLOAD_DRAIN_TIMEOUT_MS: '1500',
      UPLOAD_AUTH_TOKEN: 'x'.repeat(16),
    });
    expect(c.allowedTypes).toEqual(['image/png', 'image/*', 'application/pdf']);
    expect(c.memory).toEqual({ budgetBytes: 0, maxWaiting: 5, gcEveryBytes: 4 * 2 ** 20 });
    expect(loadConfig({ UPLOAD_GC_EVERY_BYTES: '0' }).memory.gcEveryBytes).toBe(0);
    expect(loadConfig({ S3_UNSIGNED_PAYLOAD: 'false' }).s3.unsignedPayload).toBe(false);
    expect(c.timeouts).toEqual({ headersMs: 1000, idleMs: 2000, drainMs: 1500 });
    expect(loadConfig({ UPLOAD_DRAIN_TIMEOUT_MS: '0' }).timeouts.drainMs).toBe(0);
    expect(problems({ UPLOAD_DRAIN_TIMEOUT_MS: '-1' })).toEqual([
      expect.stringMatching(/^UPLOAD_DRAIN_TIMEOUT_MS must be a whole number/),
    ]);
    expect(problems({ UPLOAD_DRAIN_TIMEOUT_MS: '3600001' })).toEqual([
      expect.stringMatching(/^UPLOAD_DRAIN_TIMEOUT_MS must be between 0 and 3600000/),
    ]);
    expect(c.authTokens).toEqual({ default: 'x'.repeat(16) });
    expect(loadConfig({}).s3.readBack).toBe('auto');
    expect(loadConfig({ S3_READ_BACK: 'Always' }).s3.readBack).toBe('always');
    expect(loadConfig({ UPLOAD_MEMORY_BYTES: '5MiB' }).memory.budgetBytes).toBe(5 * 2 ** 20);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ PORT: '', S3_ENDPOINT: ' ' }).port).toBe(3000);
  });
});

describe('bearer tokens', () => {
  it('names one token per caller; UPLOAD_AUTH_TOKEN is the caller "default"', () => {
    const c = loadConfig({
      UPLOAD_AUTH_TOKENS: 'billing:b'.padEnd(25, 'b') + ', reports:' + 'r'.repeat(16),
      UPLOAD_AUTH_TOKEN: 'd'.repeat(16),
    });
    expect(c.authTokens).toEqual({ default: 'd'.repeat(16), billing: 'b'.repeat(17), reports: 'r'.repeat(16) });
  });

  it.each([
    ['billing', /name:token pairs/],
    ['billing:short', /token of "billing" must be at least 16/],
    [`a:${'x'.repeat(16)},a:${'y'.repeat(16)}`, /"a" is given twice/],
  ])('refuses UPLOAD_AUTH_TOKENS=%s', (value, message) => {
    expect(() => loadConfig({ UPLOAD_AUTH_TOKENS: value })).toThrow(message);
  });
});

describe('unknown variables', () => {
  it('names the closest known setting for a misspelled one', () => {
    expect(() => loadConfig({ UPLOAD_MAX_FILE_BYTE: '1MiB' })).toThrow(
      /UPLOAD_MAX_FILE_BYTE is not a known setting \(did you mean UPLOAD_MAX_FILE_BYTES\?\)/,
    );
    expect(() => loadConfig({ S3_PART_SIZE: '8MiB', UPLOAD_BUCKETS: 'x' })).toThrow(/S3_PART_SIZE[\s\S]*UPLOAD_BUCKETS/);
  });

  it("leaves other programs' variables alone", () => {
    expect(() =>
      loadConfig({ S3_STREAM_UPLOAD_URL: 'http://x', S3_TEST_RADOSGW: '0', HOME: '/root', UPLOADS: '1' }),
    ).not.toThrow();
  });
});

describe('parseBytes', () => {
  it.each([
    ['123', 123],
    ['8MiB', 8 * 2 ** 20],
    ['8 mib', 8 * 2 ** 20],
    ['5GB', 5e9],
    ['1.5KiB', 1536],
    ['2TiB', 2 * 2 ** 40],
    ['12b', 12],
  ])('%s -> %d', (text, bytes) => expect(parseBytes(text)).toBe(bytes));
  it.each(['', 'MiB', '-1', '1e3', '5 parsecs', '0x10'])('%j is not a size', (text) => expect(parseBytes(text)).toBeUndefined());
});

describe('upload session settings', () => {
  it('default: no secret, 3600 s, 100 URLs per answer', () => {
    expect(loadConfig({}).sessions).toEqual({ secret: undefined, secretParam: undefined, ttlSeconds: 3600, batchParts: 100 });
  });

  it('reads UPLOAD_SESSION_SECRET, UPLOAD_SESSION_TTL_SECONDS, UPLOAD_SESSION_BATCH_PARTS', () => {
    const c = loadConfig({
      UPLOAD_SESSION_SECRET: 's'.repeat(32),
      UPLOAD_SESSION_TTL_SECONDS: '604800',
      UPLOAD_SESSION_BATCH_PARTS: '1000',
    });
    expect(c.sessions).toEqual({ secret: 's'.repeat(32), secretParam: undefined, ttlSeconds: 604800, batchParts: 1000 });
  });

  it.each(['/s3-stream-upload/prod/session-secret', 'session-secret', 'arn:aws:ssm:eu-west-1:111122223333:parameter/app/secret'])(
    'reads UPLOAD_SESSION_SECRET_PARAM %s',
    (name) => {
      expect(loadConfig({ UPLOAD_SESSION_SECRET_PARAM: name }).sessions).toMatchObject({ secret: undefined, secretParam: name });
    },
  );

  it.each([
    [{ UPLOAD_SESSION_SECRET: 'short' }, /UPLOAD_SESSION_SECRET must be at least 32 characters/],
    [{ UPLOAD_SESSION_TTL_SECONDS: '59' }, /UPLOAD_SESSION_TTL_SECONDS must be between 60 and 604800/],
    [{ UPLOAD_SESSION_TTL_SECONDS: '604801' }, /UPLOAD_SESSION_TTL_SECONDS must be between 60 and 604800/],
    [{ UPLOAD_SESSION_TTL_SECONDS: '1h' }, /UPLOAD_SESSION_TTL_SECONDS must be a whole number/],
    [{ UPLOAD_SESSION_BATCH_PARTS: '0' }, /UPLOAD_SESSION_BATCH_PARTS must be between 1 and 1000/],
    [{ UPLOAD_SESSION_BATCH_PARTS: '1001' }, /UPLOAD_SESSION_BATCH_PARTS must be between 1 and 1000/],
    [{ UPLOAD_SESSION_SECRET_PARAM: '/app//secret' }, /UPLOAD_SESSION_SECRET_PARAM must be an SSM parameter name/],
    [{ UPLOAD_SESSION_SECRET_PARAM: '/app/se cret' }, /UPLOAD_SESSION_SECRET_PARAM must be an SSM parameter name/],
    [{ UPLOAD_SESSION_SECRET_PARAM: 'arn:aws:s3:::bucket/key' }, /UPLOAD_SESSION_SECRET_PARAM must be an SSM parameter name/],
    [
      { UPLOAD_SESSION_SECRET_PARAM: '/app/secret', UPLOAD_SESSION_SECRET: 's'.repeat(32) },
      /UPLOAD_SESSION_SECRET and UPLOAD_SESSION_SECRET_PARAM are both set/,
    ],
  ])('refuses %j', (env, message) => {
    expect(problems(env)).toEqual([expect.stringMatching(message)]);
  });

  it('never puts the secret in an error message', () => {
    expect(problems({ UPLOAD_SESSION_SECRET: 'tiny-secret' }).join('\n')).not.toContain('tiny-secret');
  });
});

describe('idempotency settings', () => {
  it('default: answers replayed for 24 h, a running request stale after 120 s without a refresh', () => {
    expect(loadConfig({}).idempotency).toEqual({ ttlSeconds: 86_400, staleSeconds: 120 });
  });

  it('reads UPLOAD_IDEMPOTENCY_TTL_SECONDS and UPLOAD_IDEMPOTENCY_STALE_SECONDS', () => {
    const c = loadConfig({ UPLOAD_IDEMPOTENCY_TTL_SECONDS: '2592000', UPLOAD_IDEMPOTENCY_STALE_SECONDS: '10' });
    expect(c.idempotency).toEqual({ ttlSeconds: 2_592_000, staleSeconds: 10 });
  });

  it.each([
    [{ UPLOAD_IDEMPOTENCY_TTL_SECONDS: '59' }, /UPLOAD_IDEMPOTENCY_TTL_SECONDS must be between 60 and 2592000/],
    [{ UPLOAD_IDEMPOTENCY_TTL_SECONDS: '1d' }, /UPLOAD_IDEMPOTENCY_TTL_SECONDS must be a whole number/],
    [{ UPLOAD_IDEMPOTENCY_STALE_SECONDS: '9' }, /UPLOAD_IDEMPOTENCY_STALE_SECONDS must be between 10 and 3600/],
    [{ UPLOAD_IDEMPOTENCY_STALE_SECONDS: '3601' }, /UPLOAD_IDEMPOTENCY_STALE_SECONDS must be between 10 and 3600/],
  ])('refuses %j', (env, message) => {
    expect(problems(env)).toEqual([expect.stringMatching(message)]);
  });
});

describe('metric dimensions', () => {
  it('default: no stage, no function name', () => {
    const c = loadConfig({});
    expect(c.stage).toBeUndefined();
    expect(c.lambda.functionName).toBeUndefined();
  });

  it('reads UPLOAD_STAGE, else STAGE, and AWS_LAMBDA_FUNCTION_NAME', () => {
    expect(loadConfig({ UPLOAD_STAGE: 'prod', STAGE: 'dev' }).stage).toBe('prod');
    expect(loadConfig({ STAGE: 'dev' }).stage).toBe('dev');
    expect(loadConfig({ AWS_LAMBDA_FUNCTION_NAME: 's3-stream-upload-dev-upload' }).lambda.functionName).toBe(
      's3-stream-upload-dev-upload',
    );
  });

  it.each(['pr od', 'x'.repeat(65), 'dev/prod'])('refuses UPLOAD_STAGE %j', (stage) => {
    expect(problems({ UPLOAD_STAGE: stage })).toEqual([expect.stringMatching(/UPLOAD_STAGE must be 1 to 64/)]);
  });
});
