/**
 * The only reader of environment variables. `loadConfig(env)` is pure: it takes the
 * environment as an argument, validates every variable, reports *all* problems at once
 * (each naming its variable) and returns a frozen config. Call it once at start.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

import { S3_MAX_PART_BYTES, S3_MAX_PARTS, S3_MIN_PART_BYTES } from './storage/s3-limits.ts';

export { S3_MAX_PART_BYTES, S3_MAX_PARTS, S3_MIN_PART_BYTES };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type ChecksumCalculation = 'WHEN_SUPPORTED' | 'WHEN_REQUIRED';

export interface Config {
  /** `PORT`: Node server port. Default 3000. */
  readonly port: number;
  /** `HOST`: Node server listen address. Default `127.0.0.1` (set `0.0.0.0` in a container). */
  readonly host: string;
  /**
   * `UPLOAD_HEADERS_TIMEOUT_MS`: time a client has to send its request headers, ms. Default 30000.
   * `UPLOAD_IDLE_TIMEOUT_MS`: a connection that sends nothing this long is closed, ms. Default 120000.
   * A whole request has no time limit (large files on slow links): these two keep slow or
   * stalled clients from holding connections and uploads.
   * `UPLOAD_DRAIN_TIMEOUT_MS`: on SIGTERM/SIGINT, time uploads in flight get to finish before
   * they are aborted, ms, 0..3600000. Default 25000: under the 30 s grace period of
   * Kubernetes and ECS, so the aborts and the exit happen before the SIGKILL.
   */
  readonly timeouts: { readonly headersMs: number; readonly idleMs: number; readonly drainMs: number };
  /** `LOG_LEVEL`: debug | info | warn | error | silent. Default `info`. */
  readonly logLevel: LogLevel;
  /**
   * `UPLOAD_STAGE` (else `STAGE`): deployment stage (`dev`, `prod`), a dimension of every
   * metric so that stages sharing an account and region do not mix. Letters, digits, `.`,
   * `_`, `-`, at most 64. Default: none (the dimension is left out).
   */
  readonly stage: string | undefined;
  /** `UPLOAD_KEY_PREFIX`: prefix of every object key. Default `uploads/`. */
  readonly keyPrefix: string;
  /**
   * Bearer tokens by caller name. `UPLOAD_AUTH_TOKENS=name:token,name:token` names one token
   * per calling service; `UPLOAD_AUTH_TOKEN=token` is the caller `default`. When any is set,
   * every route but the probes requires `Authorization: Bearer <token>` unless the platform
   * already verified the caller (IAM). Tokens are at least 16 characters. Default: open.
   */
  readonly authTokens: Readonly<Record<string, string>>;
  /**
   * `UPLOAD_PREFIX_BY_CALLER`: store each caller's objects under `<UPLOAD_KEY_PREFIX><caller>/`
   * (account-role for IAM roles, the token's name, api-key-<id>), so no caller writes
   * outside its own prefix. Default false.
   */
  readonly prefixByCaller: boolean;
  readonly limits: {
    /** `UPLOAD_MAX_FILE_BYTES`: largest file, bytes. Default 5 GiB. */
    readonly maxFileBytes: number;
    /** `UPLOAD_MAX_FILES`: most files per request. Default 10. */
    readonly maxFiles: number;
    /** `UPLOAD_MAX_FIELDS`: most text fields per request. Default 100. */
    readonly maxFields: number;
    /** `UPLOAD_MAX_FIELD_BYTES`: largest text field value, bytes. Default 64 KiB. */
    readonly maxFieldBytes: number;
    /** `UPLOAD_MAX_TOTAL_BYTES`: largest request body, bytes. Default 10 GiB. */
    readonly maxTotalBytes: number;
  };
  /**
   * `UPLOAD_ALLOWED_TYPES`: comma-separated content types accepted (`image/png`, `image/*`),
   * checked against each file's magic bytes before anything is sent to S3. Default: any.
   */
  readonly allowedTypes: readonly string[] | undefined;
  /**
   * `UPLOAD_SHA256`: `requested` (default) hashes a file only when its request sends a
   * `sha256` field to check; `always` computes every file's SHA-256 and returns it (its CPU
   * cost is in bench/README.md).
   */
  readonly sha256: 'requested' | 'always';
  readonly memory: {
    /**
     * `UPLOAD_MEMORY_BYTES`: memory for file bytes shared by all uploads of a process, bytes
     * (src/core/memory-budget.ts). A file holds what its bytes need: its own size when it is
     * under a part (bounded by its request's Content-Length), else up to S3_QUEUE_SIZE + 1
     * parts. Default 40 MiB; at least S3_PART_BYTES; `0` turns the bound off.
     */
    readonly budgetBytes: number;
    /** `UPLOAD_MEMORY_QUEUE`: files that may wait for memory before new ones get 503 BUSY. Default 1024. */
    readonly maxWaiting: number;
    /**
     * `UPLOAD_GC_EVERY_BYTES`: run a minor (young-generation) GC each time this many body
     * bytes have been received without a GC of V8's own, so that dead socket-read buffers are
     * freed at once instead of piling up (src/gc-pacer.ts). Default 4 MiB; `0` leaves GC
     * timing to V8.
     */
    readonly gcEveryBytes: number;
  };
  readonly s3: {
    /**
     * True when neither `S3_ENDPOINT` nor `UPLOAD_BUCKET` is set: the Node server then starts
     * an embedded S3 (s3rver) for local use.
     */
    readonly embedded: boolean;
    /** `UPLOAD_BUCKET`: target bucket. Default `uploads` (embedded S3 only). */
    readonly bucket: string;
    /** `S3_ENDPOINT`: custom S3 endpoint URL (radosgw, MinIO, s3rver). Default: AWS. */
    readonly endpoint: string | undefined;
    /** `S3_FORCE_PATH_STYLE`: path-style URLs. Default true with a custom endpoint, else false. */
    readonly forcePathStyle: boolean;
    /** `AWS_REGION`: default `us-east-1`. */
    readonly region: string;
    /**
     * `AWS_REQUEST_CHECKSUM_CALCULATION` (the SDK's own variable): default `WHEN_REQUIRED`
     * with a custom endpoint (s3rver stores aws-chunked framing, radosgw rejects it with
     * 411), else `WHEN_SUPPORTED`.
     */
    readonly checksumCalculation: ChecksumCalculation;
    /**
     * `S3_PART_BYTES`: multipart part size, bytes, 5 MiB..5 GiB. Default 5 MiB (S3's minimum):
     * a large file holds up to S3_QUEUE_SIZE + 1 parts of UPLOAD_MEMORY_BYTES. 10,000 parts of
     * it hold 48.8 GiB.
     */
    readonly partBytes: number;
    /** `S3_QUEUE_SIZE`: parts uploaded in parallel per file, 1..64. Default 4. */
    readonly queueSize: number;
    /**
     * `S3_UNSIGNED_PAYLOAD`: sign parts with `UNSIGNED-PAYLOAD` instead of a SHA-256 of each
     * part. Default: true for https endpoints (AWS), false for plain http,
     * where only the signature protects the bytes. Set `true` for an http endpoint behind a
     * TLS-terminating proxy or on a trusted network.
     */
    readonly unsignedPayload: boolean | undefined;
    /**
     * `S3_READ_BACK`: `auto` (default) reads an object's size back (HeadObject) only when S3's
     * answer does not confirm the bytes (an echoed CRC32, or a PutObject ETag equal to the MD5
     * sent); `always` reads it back after every upload.
     */
    readonly readBack: 'auto' | 'always';
  };
  readonly lambda: {
    /**
     * `UPLOAD_LAMBDA_MAX_BODY_BYTES`: largest decoded body the function takes, bytes.
     * Default 6,291,456 (Lambda's 6 MB synchronous payload; base64 leaves ~4.4 MB of file).
     */
    readonly maxBodyBytes: number;
    /** `UPLOAD_DEADLINE_MARGIN_MS`: time kept back from Lambda's timeout to abort cleanly. Default 3000. */
    readonly deadlineMarginMs: number;
    /** `AWS_LAMBDA_FUNCTION_NAME` (set by the Lambda runtime): a metric dimension. Default: none. */
    readonly functionName: string | undefined;
  };
  /** Idempotent retries of `POST /uploads` (`Idempotency-Key`); records under `<UPLOAD_KEY_PREFIX>.idempotency/`. */
  readonly idempotency: {
    /**
     * `UPLOAD_IDEMPOTENCY_TTL_SECONDS`: how long a completed request's answer is replayed to a
     * retry with the same key, s, 60..2592000. Default 86400 (24 h); match the bucket's
     * lifecycle expiry of the records to it.
     */
    readonly ttlSeconds: number;
    /**
     * `UPLOAD_IDEMPOTENCY_STALE_SECONDS`: a running request refreshes its record every quarter of
     * this; one not refreshed for this long died (killed process, Lambda timeout) and a retry
     * takes its key over, s, 10..3600. Default 120.
     */
    readonly staleSeconds: number;
  };
  /** Upload sessions: the direct-to-S3 lane (`POST /uploads/sessions`). */
  readonly sessions: {
    /**
     * `UPLOAD_SESSION_SECRET`: HMAC-SHA256 key that signs session ids, at least 32 characters.
     * Default: none. The Lambda function then answers the session routes with 404; the Node
     * server generates a random one per process (sessions do not survive a restart).
     */
    readonly secret: string | undefined;
    /**
     * `UPLOAD_SESSION_SECRET_PARAM`: name (`/app/stage/secret`) or ARN of an SSM parameter,
     * normally a SecureString, holding the secret; read and decrypted at start
     * (src/secrets.ts), so the secret never sits in a plain-text environment variable.
     * Default: none. Not together with `UPLOAD_SESSION_SECRET`.
     */
    readonly secretParam: string | undefined;
    /** `UPLOAD_SESSION_TTL_SECONDS`: lifetime of a session and of its presigned URLs, s, 60..604800. Default 3600. */
    readonly ttlSeconds: number;
    /** `UPLOAD_SESSION_BATCH_PARTS`: presigned part URLs per response, 1..1000. Default 100. */
    readonly batchParts: number;
  };
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: KiB,
  mib: MiB,
  gib: GiB,
  tib: 1024 * GiB,
};

/** Parses `8388608`, `8MiB`, `8 MiB`, `5GB`, `1.5GiB` to bytes; undefined when not a size. */
export function parseBytes(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined) return undefined;
  const value = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(value) ? value : undefined;
}

export interface LoadOptions {
  /** Fail when `UPLOAD_BUCKET` is missing (the Lambda function has no embedded S3). */
  requireBucket?: boolean;
}

export function loadConfig(env: Env, options: LoadOptions = {}): Config {
  const problems: string[] = [];
  const known = new Set<string>();
  const read = (name: string): string | undefined => {
    known.add(name);
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = read(name);
    if (raw === undefined) return def;
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
      problems.push(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
      return def;
    }
    const n = Number(raw);
    if (n < min || n > max) problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };

  const bytes = (name: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = read(name);
    if (raw === undefined) return def;
    const n = parseBytes(raw);
    if (n === undefined) {
      problems.push(`${name} must be a byte size such as 8388608 or 8MiB, got ${JSON.stringify(raw)}`);
      return def;
    }
    if (n < min || n > max) problems.push(`${name} must be between ${min} and ${max} bytes, got ${n}`);
    return n;
  };

  const bool = (name: string, def: boolean): boolean => {
    const raw = read(name)?.toLowerCase();
    if (raw === undefined) return def;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    problems.push(`${name} must be true or false, got ${JSON.stringify(raw)}`);
    return def;
  };

  const oneOf = <T extends string>(name: string, def: T, allowed: readonly T[]): T => {
    const raw = read(name);
    if (raw === undefined) return def;
    const match = allowed.find((a) => a.toLowerCase() === raw.toLowerCase());
    if (match === undefined) problems.push(`${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
    return match ?? def;
  };

  const endpoint = read('S3_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^/]+/i.test(endpoint)) {
    problems.push(`S3_ENDPOINT must be an http(s) URL, got ${JSON.stringify(endpoint)}`);
  }
  const bucketVar = read('UPLOAD_BUCKET');
  if (bucketVar !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucketVar)) {
    problems.push(`UPLOAD_BUCKET must be a valid S3 bucket name, got ${JSON.stringify(bucketVar)}`);
  }
  if (options.requireBucket && bucketVar === undefined) problems.push('UPLOAD_BUCKET is required');
  if (endpoint !== undefined && bucketVar === undefined && !options.requireBucket) {
    problems.push('UPLOAD_BUCKET is required when S3_ENDPOINT is set');
  }
  const embedded = endpoint === undefined && bucketVar === undefined && !options.requireBucket;

  known.add('UPLOAD_KEY_PREFIX');
  const keyPrefix = env['UPLOAD_KEY_PREFIX'] ?? 'uploads/';
  if (keyPrefix.startsWith('/') || keyPrefix.includes('..') || hasControlChars(keyPrefix)) {
    problems.push(
      `UPLOAD_KEY_PREFIX must not start with "/" or hold ".." or control characters, got ${JSON.stringify(keyPrefix)}`,
    );
  }

  const maxFileBytes = bytes('UPLOAD_MAX_FILE_BYTES', 5 * GiB, 1);
  const partBytes = bytes('S3_PART_BYTES', 5 * MiB, S3_MIN_PART_BYTES, S3_MAX_PART_BYTES);
  if (partBytes * S3_MAX_PARTS < maxFileBytes) {
    problems.push(
      `S3_PART_BYTES (${partBytes}) x ${S3_MAX_PARTS} parts cannot hold UPLOAD_MAX_FILE_BYTES (${maxFileBytes}): raise S3_PART_BYTES to at least ${Math.ceil(maxFileBytes / S3_MAX_PARTS)}`,
    );
  }

  const memoryBytes = bytes('UPLOAD_MEMORY_BYTES', 40 * MiB, 0);
  if (memoryBytes > 0 && memoryBytes < partBytes) {
    problems.push(
      `UPLOAD_MEMORY_BYTES (${memoryBytes}) must be 0 or at least S3_PART_BYTES (${partBytes}): a large file needs one part`,
    );
  }

  const allowedTypesRaw = read('UPLOAD_ALLOWED_TYPES');
  const allowedTypes = allowedTypesRaw
    ?.split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  for (const t of allowedTypes ?? []) {
    if (!/^([a-z0-9][a-z0-9!#$&^_.+-]*|\*)\/([a-z0-9][a-z0-9!#$&^_.+-]*|\*)$/.test(t)) {
      problems.push(`UPLOAD_ALLOWED_TYPES must list content types such as image/png or image/*, got ${JSON.stringify(t)}`);
    }
  }

  const authTokens: Record<string, string> = {};
  const authToken = read('UPLOAD_AUTH_TOKEN');
  if (authToken !== undefined) {
    if (authToken.length < 16) problems.push('UPLOAD_AUTH_TOKEN must be at least 16 characters');
    authTokens['default'] = authToken;
  }
  for (const entry of (read('UPLOAD_AUTH_TOKENS') ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9_.-]{1,64}):(\S+)$/.exec(entry);
    if (!m) {
      problems.push('UPLOAD_AUTH_TOKENS must be name:token pairs separated by commas (names of letters, digits, _ . -)');
      continue;
    }
    const [, name, token] = m as unknown as [string, string, string];
    if (token.length < 16) problems.push(`UPLOAD_AUTH_TOKENS: the token of "${name}" must be at least 16 characters`);
    if (name in authTokens) problems.push(`UPLOAD_AUTH_TOKENS: the caller name "${name}" is given twice`);
    authTokens[name] = token;
  }

  const sessionSecret = read('UPLOAD_SESSION_SECRET');
  if (sessionSecret !== undefined && sessionSecret.length < 32) {
    problems.push('UPLOAD_SESSION_SECRET must be at least 32 characters (e.g. openssl rand -base64 48)');
  }

  const sessionSecretParam = read('UPLOAD_SESSION_SECRET_PARAM');
  // SSM names: letters, digits and _.-/ (fully qualified names start with "/"), or an ARN.
  if (
    sessionSecretParam !== undefined &&
    !/^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter\/|\/)?[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(sessionSecretParam)
  ) {
    problems.push(
      `UPLOAD_SESSION_SECRET_PARAM must be an SSM parameter name such as /app/stage/secret or its ARN, got ${JSON.stringify(sessionSecretParam)}`,
    );
  }
  if (sessionSecretParam !== undefined && sessionSecret !== undefined) {
    problems.push('UPLOAD_SESSION_SECRET and UPLOAD_SESSION_SECRET_PARAM are both set: set one');
  }

  const stage = read('UPLOAD_STAGE') ?? read('STAGE');
  if (stage !== undefined && !/^[A-Za-z0-9._-]{1,64}$/.test(stage)) {
    problems.push(`UPLOAD_STAGE must be 1 to 64 letters, digits, ".", "_" or "-", got ${JSON.stringify(stage)}`);
  }

  const config: Config = {
    port: int('PORT', 3000, 0, 65535),
    host: read('HOST') ?? '127.0.0.1',
    timeouts: {
      headersMs: int('UPLOAD_HEADERS_TIMEOUT_MS', 30_000, 100, 600_000),
      idleMs: int('UPLOAD_IDLE_TIMEOUT_MS', 120_000, 100, 3_600_000),
      drainMs: int('UPLOAD_DRAIN_TIMEOUT_MS', 25_000, 0, 3_600_000),
    },
    logLevel: oneOf<LogLevel>('LOG_LEVEL', 'info', ['debug', 'info', 'warn', 'error', 'silent']),
    stage,
    keyPrefix,
    authTokens,
    prefixByCaller: bool('UPLOAD_PREFIX_BY_CALLER', false),
    allowedTypes: allowedTypes?.length ? allowedTypes : undefined,
    sha256: oneOf<'requested' | 'always'>('UPLOAD_SHA256', 'requested', ['requested', 'always']),
    memory: {
      budgetBytes: memoryBytes,
      maxWaiting: int('UPLOAD_MEMORY_QUEUE', 1024, 0, 100_000),
      gcEveryBytes: bytes('UPLOAD_GC_EVERY_BYTES', 4 * MiB, 0),
    },
    limits: {
      maxFileBytes,
      maxFiles: int('UPLOAD_MAX_FILES', 10, 1, 10_000),
      maxFields: int('UPLOAD_MAX_FIELDS', 100, 0, 10_000),
      maxFieldBytes: bytes('UPLOAD_MAX_FIELD_BYTES', 64 * KiB, 1, 16 * MiB),
      maxTotalBytes: bytes('UPLOAD_MAX_TOTAL_BYTES', 10 * GiB, 1),
    },
    s3: {
      embedded,
      bucket: bucketVar ?? 'uploads',
      endpoint,
      forcePathStyle: bool('S3_FORCE_PATH_STYLE', endpoint !== undefined),
      region: read('AWS_REGION') ?? read('AWS_DEFAULT_REGION') ?? 'us-east-1',
      checksumCalculation: oneOf<ChecksumCalculation>(
        'AWS_REQUEST_CHECKSUM_CALCULATION',
        endpoint !== undefined || embedded ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED',
        ['WHEN_SUPPORTED', 'WHEN_REQUIRED'],
      ),
      partBytes,
      queueSize: int('S3_QUEUE_SIZE', 4, 1, 64),
      unsignedPayload: read('S3_UNSIGNED_PAYLOAD') === undefined ? undefined : bool('S3_UNSIGNED_PAYLOAD', false),
      readBack: oneOf<'auto' | 'always'>('S3_READ_BACK', 'auto', ['auto', 'always']),
    },
    lambda: {
      maxBodyBytes: bytes('UPLOAD_LAMBDA_MAX_BODY_BYTES', 6 * MiB, 1),
      deadlineMarginMs: int('UPLOAD_DEADLINE_MARGIN_MS', 3000, 0, 60_000),
      functionName: read('AWS_LAMBDA_FUNCTION_NAME'),
    },
    idempotency: {
      ttlSeconds: int('UPLOAD_IDEMPOTENCY_TTL_SECONDS', 86_400, 60, 2_592_000),
      staleSeconds: int('UPLOAD_IDEMPOTENCY_STALE_SECONDS', 120, 10, 3600),
    },
    sessions: {
      secret: sessionSecret,
      secretParam: sessionSecretParam,
      // SigV4 presigned URLs live at most 7 days.
      ttlSeconds: int('UPLOAD_SESSION_TTL_SECONDS', 3600, 60, 604_800),
      batchParts: int('UPLOAD_SESSION_BATCH_PARTS', 100, 1, 1000),
    },
  };
  problems.push(...unknownVariables(env, known));
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(config);
}

/**
 * Variables in this service's namespaces that no setting reads: a typo such as
 * `UPLOAD_MAX_FILE_BYTE` must fail loudly rather than leave the default in force.
 * `S3_STREAM_UPLOAD_*` belongs to the CLI, `S3_TEST_*` to the test suites.
 */
function unknownVariables(env: Env, known: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    if (!/^(UPLOAD|S3)_/.test(name) || known.has(name) || /^S3_(STREAM_UPLOAD|TEST)_/.test(name)) continue;
    const closest = [...known].sort((a, b) => editDistance(name, a) - editDistance(name, b))[0];
    problems.push(`${name} is not a known setting${closest ? ` (did you mean ${closest}?)` : ''}`);
  }
  return problems;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

function hasControlChars(text: string): boolean {
  return [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

function deepFreeze<T extends object>(obj: T): T {
  for (const value of Object.values(obj)) if (value && typeof value === 'object') deepFreeze(value as object);
  return Object.freeze(obj);
}
