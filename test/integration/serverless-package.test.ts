// Packages the service offline (`serverless package`, osls v4) for the dev and prod stages and
// checks the generated CloudFormation template and the Lambda artifact.
//
// Runs without AWS credentials and without network access: every value in serverless.yml must be
// resolvable locally. Each stage is packaged in its own temporary service directory (symlinks to
// the project's top-level entries) so the two runs can go in parallel and nothing is written into
// the project (serverless-esbuild's `.esbuild/` work folder lands in the temporary directory).
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SLS_BIN = path.join(ROOT, 'node_modules', '.bin', 'serverless');
const PACKAGE_TIMEOUT_MS = 180_000;

const CALLERS = ['arn:aws:iam::111122223333:role/billing', 'arn:aws:iam::444455556666:role/team/reports'];
const API_KEYS = ['billing', 'reports'];

// Must match `params` in serverless.yml. dev as it packages by default (no callers, no API
// keys); prod with two calling roles and two API keys.
const STAGES = {
  dev: { memorySize: 512, timeout: 60, logRetentionInDays: 7, versioning: false, callers: [], apiKeys: [] },
  prod: { memorySize: 1024, timeout: 300, logRetentionInDays: 365, versioning: true, callers: CALLERS, apiKeys: API_KEYS },
} as const;
type Stage = keyof typeof STAGES;
const paramsOf = (stage: Stage): string[] => {
  const { callers, apiKeys } = STAGES[stage];
  return [
    ...(callers.length ? [`--param=callerRoleArns=${callers.join(',')}`] : []),
    ...(apiKeys.length ? [`--param=apiKeys=${apiKeys.join(',')}`] : []),
  ];
};

const ROUTES = [
  'POST /uploads',
  'POST /uploads/sessions',
  'POST /uploads/sessions/{id}/parts',
  'POST /uploads/sessions/{id}/complete',
  'DELETE /uploads/sessions/{id}',
  'GET /openapi.json',
];

// Least-privilege allow-list for the upload bucket.
const ALLOWED_S3_ACTIONS = new Set([
  's3:PutObject',
  's3:GetObject',
  's3:DeleteObject',
  's3:DeleteObjectVersion',
  's3:AbortMultipartUpload',
  's3:ListMultipartUploadParts',
  's3:ListBucketMultipartUploads',
]);

interface Resource {
  Type: string;
  Condition?: string;
  Properties: Record<string, unknown>;
}
interface Template {
  Resources: Record<string, Resource>;
  Conditions?: Record<string, unknown>;
  Outputs?: Record<string, unknown>;
}
interface Statement {
  Sid?: string;
  Effect: string;
  Principal?: unknown;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
}
interface PolicyDocument {
  Statement: Statement[];
}
interface ZipEntry {
  name: string;
  size: number;
  compressedSize: number;
  /** Compression method (8: deflate) and where the entry's local header starts. */
  method: number;
  localOffset: number;
}
interface Packaged {
  dir: string;
  template: Template;
  zipPath: string;
  zipBytes: number;
  entries: ZipEntry[];
  seconds: number;
}

const results = new Map<Stage, Packaged>();
let workDir = '';

function run(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    CI: '1',
    // No credentials of any kind, and no instance-metadata lookups.
    AWS_SHARED_CREDENTIALS_FILE: path.join(cwd, 'no-aws-credentials'),
    AWS_CONFIG_FILE: path.join(cwd, 'no-aws-config'),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
  for (const name of [
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'AWS_DEFAULT_PROFILE',
    'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
    'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_ROLE_ARN',
  ]) {
    delete env[name];
  }
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [SLS_BIN, ...args],
      { cwd, env, timeout: PACKAGE_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`serverless ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
        } else {
          resolve({ stdout, stderr });
        }
      },
    );
  });
}

// Temporary service directory mirroring the project: top-level files are copied (osls only
// accepts a regular serverless.yml, not a symlink), folders are symlinked.
async function makeServiceDir(label: string): Promise<string> {
  const dir = path.join(workDir, `service-${label}`);
  await mkdir(dir);
  const skip = new Set(['.git', '.serverless', '.esbuild', '.build', 'coverage', '.data']);
  for (const entry of await readdir(ROOT, { withFileTypes: true })) {
    if (skip.has(entry.name)) continue;
    const from = path.join(ROOT, entry.name);
    const to = path.join(dir, entry.name);
    if (entry.isFile()) await copyFile(from, to);
    else await symlink(from, to);
  }
  return dir;
}

// Lists a zip archive from its central directory (no unzip binary).
function listZip(buf: Buffer): ZipEntry[] {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file: end of central directory not found');
  const count = buf.readUInt16LE(eocd + 10);
  let offset = buf.readUInt32LE(eocd + 16);
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(offset) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const nameLength = buf.readUInt16LE(offset + 28);
    const extraLength = buf.readUInt16LE(offset + 30);
    const commentLength = buf.readUInt16LE(offset + 32);
    entries.push({
      method: buf.readUInt16LE(offset + 10),
      localOffset: buf.readUInt32LE(offset + 42),
      compressedSize: buf.readUInt32LE(offset + 20),
      size: buf.readUInt32LE(offset + 24),
      name: buf.toString('utf8', offset + 46, offset + 46 + nameLength),
    });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The bytes of one entry (stored or deflated). */
function readZipEntry(buf: Buffer, entry: ZipEntry): Buffer {
  const at = entry.localOffset;
  if (buf.readUInt32LE(at) !== 0x04034b50) throw new Error(`corrupt zip local header for ${entry.name}`);
  const start = at + 30 + buf.readUInt16LE(at + 26) + buf.readUInt16LE(at + 28);
  const data = buf.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) return data;
  if (entry.method === 8) return inflateRawSync(data);
  throw new Error(`zip method ${entry.method} of ${entry.name} not supported`);
}

async function packageStage(stage: string, params: string[] = [], label = stage): Promise<Packaged> {
  const serviceDir = await makeServiceDir(label);
  const out = path.join(workDir, label);
  const started = performance.now();
  await run(['package', '--stage', stage, '--package', out, ...params], serviceDir);
  const seconds = (performance.now() - started) / 1000;
  const template = JSON.parse(await readFile(path.join(out, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  const zipPath = path.join(out, 'upload.zip');
  const zip = await readFile(zipPath);
  return { dir: out, template, zipPath, zipBytes: (await stat(zipPath)).size, entries: listZip(zip), seconds };
}

function get(stage: Stage): Packaged {
  const packaged = results.get(stage);
  if (!packaged) throw new Error(`stage ${stage} was not packaged`);
  return packaged;
}

function resourcesOfType(template: Template, type: string): [string, Resource][] {
  return Object.entries(template.Resources).filter(([, r]) => r.Type === type);
}

function single(template: Template, type: string): [string, Resource] {
  const found = resourcesOfType(template, type);
  expect(found, `exactly one ${type}`).toHaveLength(1);
  return found[0]!;
}

function uploadFunction(template: Template): Resource {
  return single(template, 'AWS::Lambda::Function')[1];
}

// Logical id of the bucket wired to the function through UPLOAD_BUCKET.
function uploadBucketId(template: Template): string {
  const env = uploadFunction(template).Properties.Environment as { Variables: Record<string, unknown> };
  const ref = env.Variables.UPLOAD_BUCKET as { Ref?: string };
  expect(ref.Ref, 'UPLOAD_BUCKET is a Ref to a bucket of the stack').toBeTypeOf('string');
  expect(template.Resources[ref.Ref!]?.Type).toBe('AWS::S3::Bucket');
  return ref.Ref!;
}

// "POST /uploads/sessions/{id}" for each AWS::ApiGateway::Method.
function methodsByRoute(template: Template): Map<string, Resource> {
  const pathOf = (id: string): string => {
    const props = template.Resources[id]?.Properties;
    if (!props) throw new Error(`unknown API Gateway resource ${id}`);
    const parent = props.ParentId as { Ref?: string };
    const prefix = parent.Ref ? pathOf(parent.Ref) : '';
    return `${prefix}/${String(props.PathPart)}`;
  };
  const routes = new Map<string, Resource>();
  for (const [, method] of resourcesOfType(template, 'AWS::ApiGateway::Method')) {
    const resourceId = method.Properties.ResourceId as { Ref: string };
    routes.set(`${String(method.Properties.HttpMethod)} ${pathOf(resourceId.Ref)}`, method);
  }
  return routes;
}

// Every statement of the Lambda role's inline policies and of stand-alone AWS::IAM::Policy
// resources, with the condition of the resource carrying it.
function iamStatements(template: Template): { statement: Statement; condition: string | undefined }[] {
  const found: { statement: Statement; condition: string | undefined }[] = [];
  for (const [, role] of resourcesOfType(template, 'AWS::IAM::Role')) {
    const policies = (role.Properties.Policies ?? []) as { PolicyDocument: PolicyDocument }[];
    for (const policy of policies) {
      for (const statement of policy.PolicyDocument.Statement) found.push({ statement, condition: role.Condition });
    }
  }
  for (const [, policy] of resourcesOfType(template, 'AWS::IAM::Policy')) {
    const document = policy.Properties.PolicyDocument as PolicyDocument;
    for (const statement of document.Statement) found.push({ statement, condition: policy.Condition });
  }
  return found;
}

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);

// Evaluates a condition made of Fn::Equals on values already resolved at package time.
function conditionHolds(template: Template, name: string): boolean {
  const condition = template.Conditions?.[name] as { 'Fn::Equals'?: [unknown, unknown] } | undefined;
  const equals = condition?.['Fn::Equals'];
  if (!equals) throw new Error(`condition ${name} is not a plain Fn::Equals`);
  return String(equals[0]) === String(equals[1]);
}

beforeAll(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), 'sls-package-'));
  const stages = Object.keys(STAGES) as Stage[];
  const packaged = await Promise.all(stages.map((stage) => packageStage(stage, paramsOf(stage))));
  stages.forEach((stage, i) => results.set(stage, packaged[i]!));
  for (const [stage, p] of results) {
    console.log(
      `[serverless package] stage=${stage} time=${p.seconds.toFixed(1)}s zip=${p.zipBytes} bytes ` +
        `(${p.entries.map((e) => `${e.name}: ${e.size} bytes`).join(', ')})`,
    );
  }
}, PACKAGE_TIMEOUT_MS);

afterAll(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

describe.each(Object.keys(STAGES) as Stage[])('serverless package --stage %s', (stage) => {
  const expected = STAGES[stage];

  it('exposes a RESPONSE_STREAM Function URL with AWS_IAM auth', () => {
    const { template } = get(stage);
    const [, url] = single(template, 'AWS::Lambda::Url');
    expect(url.Properties).toMatchObject({ InvokeMode: 'RESPONSE_STREAM', AuthType: 'AWS_IAM' });
    // AWS_IAM: no public invoke permission for the URL.
    const publicUrlPermissions = resourcesOfType(template, 'AWS::Lambda::Permission').filter(
      ([, p]) => p.Properties.FunctionUrlAuthType === 'NONE',
    );
    expect(publicUrlPermissions).toEqual([]);
  });

  it('routes every REST method to the streaming Lambda invocation, authorized by IAM', () => {
    const { template } = get(stage);
    const routes = methodsByRoute(template);
    expect([...routes.keys()].sort()).toEqual([...ROUTES].sort());
    for (const route of ROUTES) {
      const method = routes.get(route)!;
      expect(method.Properties.AuthorizationType, route).toBe('AWS_IAM');
      // API keys only where keys exist, for their usage plan; never instead of IAM.
      expect(method.Properties.ApiKeyRequired, route).toBe(expected.apiKeys.length > 0);
      const integration = method.Properties.Integration as Record<string, unknown>;
      expect(integration.Type, route).toBe('AWS_PROXY');
      expect(integration.ResponseTransferMode, route).toBe('STREAM');
      expect(JSON.stringify(integration.Uri), route).toContain('/response-streaming-invocations');
      // Streaming lifts the 29 s integration cap (up to 15 min): match the function timeout.
      expect(integration.TimeoutInMillis, route).toBe(expected.timeout * 1000);
    }
  });

  it('configures the REST API: regional, binary multipart, one API key per named caller in a usage plan', () => {
    const { template } = get(stage);
    const [, api] = single(template, 'AWS::ApiGateway::RestApi');
    expect(api.Properties.BinaryMediaTypes).toContain('multipart/form-data');
    expect(api.Properties.EndpointConfiguration).toEqual({ Types: ['REGIONAL'] });
    const keys = resourcesOfType(template, 'AWS::ApiGateway::ApiKey').map(([, k]) => k.Properties.Name);
    expect(keys.sort()).toEqual(expected.apiKeys.map((name) => `s3-stream-upload-${stage}-${name}`).sort());
    expect(resourcesOfType(template, 'AWS::ApiGateway::UsagePlanKey')).toHaveLength(expected.apiKeys.length);
    const plans = resourcesOfType(template, 'AWS::ApiGateway::UsagePlan');
    expect(plans).toHaveLength(expected.apiKeys.length ? 1 : 0);
    for (const [, plan] of plans) {
      expect(plan.Properties).toMatchObject({
        Throttle: { BurstLimit: expect.any(Number), RateLimit: expect.any(Number) },
        Quota: { Limit: expect.any(Number), Period: expect.any(String) },
      });
    }
  });

  it('grants invoke to exactly the configured caller roles, never to "*"', () => {
    const { template } = get(stage);
    const callers = [...expected.callers].sort();
    // Function URL: per caller lambda:InvokeFunctionUrl (AWS_IAM) and lambda:InvokeFunction via the URL.
    const permissions = resourcesOfType(template, 'AWS::Lambda::Permission').map(([, p]) => p.Properties);
    const byAction = (action: string) =>
      permissions.filter((p) => p.Action === action && String(p.Principal).startsWith('arn:aws:iam::'));
    const urlGrants = byAction('lambda:InvokeFunctionUrl');
    expect(urlGrants.map((p) => p.Principal).sort()).toEqual(callers);
    for (const p of urlGrants)
      expect(p).toMatchObject({
        FunctionUrlAuthType: 'AWS_IAM',
        FunctionName: { 'Fn::GetAtt': ['UploadLambdaFunction', 'Arn'] },
      });
    const invokeGrants = byAction('lambda:InvokeFunction');
    expect(invokeGrants.map((p) => p.Principal).sort()).toEqual(callers);
    for (const p of invokeGrants)
      expect(p).toMatchObject({ InvokedViaFunctionUrl: true, FunctionName: { 'Fn::GetAtt': ['UploadLambdaFunction', 'Arn'] } });
    // Everything else is API Gateway's own invoke permission, bound to this API.
    const others = permissions.filter((p) => !urlGrants.includes(p) && !invokeGrants.includes(p));
    expect(others).toHaveLength(1);
    expect(others[0]).toMatchObject({ Principal: 'apigateway.amazonaws.com', Action: 'lambda:InvokeFunction' });
    expect(JSON.stringify(others[0]!.SourceArn)).toContain('ApiGatewayRestApi');
    for (const p of permissions) expect(p.Principal).not.toBe('*');

    // REST API resource policy: Allow the callers on exactly the routes, Deny everyone else.
    const [, api] = single(template, 'AWS::ApiGateway::RestApi');
    const policy = api.Properties.Policy as PolicyDocument;
    const routeArns = ROUTES.map((r) => {
      const [method, route] = r.split(' ') as [string, string];
      return `execute-api:/${stage}/${method}${route.replace(/\{[^}]+\}/g, '*')}`;
    }).sort();
    const allows = policy.Statement.filter((st) => st.Effect === 'Allow');
    if (callers.length) {
      expect(allows).toHaveLength(1);
      expect(allows[0]).toMatchObject({ Principal: { AWS: expect.any(Array) }, Action: 'execute-api:Invoke' });
      expect([...(allows[0]!.Principal as { AWS: string[] }).AWS].sort()).toEqual(callers);
      expect(asArray(allows[0]!.Resource as string[]).sort()).toEqual(routeArns);
    } else {
      expect(allows).toEqual([]);
    }
    const denies = policy.Statement.filter((st) => st.Effect === 'Deny');
    expect(denies).toHaveLength(1);
    expect(denies[0]).toMatchObject({ Principal: '*', Action: 'execute-api:Invoke' });
    expect(asArray(denies[0]!.Resource as string[]).sort()).toEqual(routeArns);
    if (callers.length) {
      const notThem = (denies[0]!.Condition as { ArnNotEquals: Record<string, string[]> }).ArnNotEquals['aws:PrincipalArn'];
      expect([...notThem!].sort()).toEqual(callers);
    } else {
      expect(denies[0]!.Condition, 'no callers: everyone is denied').toBeUndefined();
    }
  });

  it('reads the session secret from SSM at run time: only its name in the environment, read access to it alone', () => {
    const { template } = get(stage);
    const env = (uploadFunction(template).Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    const name = `/s3-stream-upload/${stage}/session-secret`;
    expect(env.UPLOAD_SESSION_SECRET_PARAM).toBe(name);
    expect(env).not.toHaveProperty('UPLOAD_SESSION_SECRET');
    expect(JSON.stringify(env)).not.toContain('resolve:ssm');
    const parameterArn = `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter${name}`;
    const statements = iamStatements(template).map(({ statement }) => statement);
    const ssm = statements.filter((st) => asArray(st.Action).some((a) => a.startsWith('ssm:')));
    expect(ssm).toHaveLength(1);
    expect(asArray(ssm[0]!.Action)).toEqual(['ssm:GetParameter']);
    expect(ssm[0]!.Resource).toEqual([{ 'Fn::Sub': parameterArn }]);
    const kms = statements.filter((st) => asArray(st.Action).some((a) => a.startsWith('kms:')));
    expect(kms).toHaveLength(1);
    expect(asArray(kms[0]!.Action)).toEqual(['kms:Decrypt']);
    // Any key of the account only through SSM and only for this parameter's encryption context.
    expect(kms[0]!.Condition).toEqual({
      StringEquals: {
        'kms:ViaService': { 'Fn::Sub': 'ssm.${AWS::Region}.amazonaws.com' },
        'kms:EncryptionContext:PARAMETER_ARN': { 'Fn::Sub': parameterArn },
      },
    });
  });

  it('creates a private, encrypted bucket that aborts incomplete multipart uploads after 1 day', () => {
    const { template } = get(stage);
    const bucket = template.Resources[uploadBucketId(template)]!;
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const encryption = bucket.Properties.BucketEncryption as {
      ServerSideEncryptionConfiguration: { ServerSideEncryptionByDefault: { SSEAlgorithm: string } }[];
    };
    expect(['AES256', 'aws:kms']).toContain(
      encryption.ServerSideEncryptionConfiguration[0]?.ServerSideEncryptionByDefault.SSEAlgorithm,
    );
    expect(bucket.Properties.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] });
    const lifecycle = bucket.Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] };
    expect(lifecycle.Rules).toContainEqual(
      expect.objectContaining({ Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 } }),
    );
    // Idempotency records (under the key prefix, see docs/idempotency.md) expire on their own.
    expect(lifecycle.Rules).toContainEqual(
      expect.objectContaining({ Status: 'Enabled', Prefix: 'uploads/.idempotency/', ExpirationInDays: 2 }),
    );
    // The name is left to CloudFormation (no account id needed at package time).
    expect(JSON.stringify(bucket.Properties.BucketName)).toContain(`-${stage}-`);
    expect(bucket.Properties.VersioningConfiguration).toEqual({
      Status: { 'Fn::If': ['VersioningEnabled', 'Enabled', 'Suspended'] },
    });
    expect(conditionHolds(template, 'VersioningEnabled')).toBe(expected.versioning);
  });

  it('denies non-TLS access to the bucket', () => {
    const { template } = get(stage);
    const bucketId = uploadBucketId(template);
    const policies = resourcesOfType(template, 'AWS::S3::BucketPolicy').filter(
      ([, p]) => (p.Properties.Bucket as { Ref?: string }).Ref === bucketId,
    );
    expect(policies).toHaveLength(1);
    const document = policies[0]![1].Properties.PolicyDocument as PolicyDocument;
    const denyTls = document.Statement.find(
      (s) =>
        s.Effect === 'Deny' &&
        String((s.Condition as { Bool?: Record<string, unknown> } | undefined)?.Bool?.['aws:SecureTransport']) === 'false',
    );
    expect(denyTls, 'Deny when aws:SecureTransport is false').toBeDefined();
    const resources = JSON.stringify(denyTls!.Resource);
    expect(resources).toContain(bucketId);
    expect(resources).toContain('/*');
  });

  it('grants least-privilege IAM: no wildcard actions, S3 only on the upload prefix', () => {
    const { template } = get(stage);
    const bucketId = uploadBucketId(template);
    const statements = iamStatements(template);
    const s3Actions = new Set<string>();
    for (const { statement, condition } of statements) {
      expect(statement.Effect).toBe('Allow');
      const actions = asArray(statement.Action);
      for (const action of actions) {
        expect(action, 'no wildcard action').not.toContain('*');
        if (action.startsWith('s3:')) {
          expect(ALLOWED_S3_ACTIONS.has(action), `unexpected ${action}`).toBe(true);
          s3Actions.add(action);
        }
        if (action === 's3:DeleteObjectVersion') expect(condition).toBe('VersioningEnabled');
      }
      for (const resource of asArray(statement.Resource)) {
        expect(resource, 'no "*" resource').not.toBe('*');
        if (actions.some((a) => a.startsWith('s3:'))) {
          const text = JSON.stringify(resource);
          expect(text, 'S3 resources reference the upload bucket').toContain(bucketId);
          if (!actions.includes('s3:ListBucketMultipartUploads')) {
            // Object-level actions: scoped to the key prefix, not the whole bucket.
            expect(text).toMatch(/\/uploads\/\*"/);
          }
        }
      }
    }
    for (const needed of ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts']) {
      expect(s3Actions).toContain(needed);
    }
    const versionDelete = statements.some(
      ({ statement, condition }) =>
        asArray(statement.Action).includes('s3:DeleteObjectVersion') &&
        (condition === undefined || conditionHolds(template, condition)),
    );
    expect(versionDelete, 's3:DeleteObjectVersion only where versioning is enabled').toBe(expected.versioning);
  });

  it('sizes the function per stage on nodejs24.x / arm64', () => {
    const { template } = get(stage);
    const fn = uploadFunction(template);
    expect(fn.Properties.FunctionName).toContain(`-${stage}-`);
    expect(fn.Properties.Runtime).toBe('nodejs24.x');
    expect(fn.Properties.Architectures).toEqual(['arm64']);
    expect(fn.Properties.MemorySize).toBe(expected.memorySize);
    expect(fn.Properties.Timeout).toBe(expected.timeout);
    expect(fn.Properties.Handler).toBe('functions/upload.handler');
    const [, logGroup] = single(template, 'AWS::Logs::LogGroup');
    expect(logGroup.Properties.RetentionInDays).toBe(expected.logRetentionInDays);
  });

  it('passes the configuration the handler reads through environment variables', () => {
    const { template } = get(stage);
    const env = (uploadFunction(template).Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    for (const name of [
      'UPLOAD_BUCKET',
      'UPLOAD_KEY_PREFIX',
      'UPLOAD_MAX_FILE_BYTES',
      'UPLOAD_MAX_FILES',
      'UPLOAD_MAX_FIELDS',
      'UPLOAD_MAX_TOTAL_BYTES',
      'UPLOAD_SESSION_SECRET_PARAM',
      'LOG_LEVEL',
      'UPLOAD_STAGE',
    ]) {
      expect(env, name).toHaveProperty(name);
    }
    expect(env.UPLOAD_KEY_PREFIX).toBe('uploads/');
    expect(env.LOG_LEVEL).toBe(stage === 'prod' ? 'info' : 'debug');
    // A metric dimension (src/metrics.ts).
    expect(env.UPLOAD_STAGE).toBe(stage);
  });

  it('outputs the bucket name, the Function URL and the REST endpoint', () => {
    const { template } = get(stage);
    const outputs = JSON.stringify(template.Outputs);
    expect(outputs).toContain(uploadBucketId(template));
    expect(outputs).toContain('FunctionUrl');
    expect(outputs).toContain('.execute-api.');
  });

  it('ships a single bundled ES module handler, without node_modules', async () => {
    const { zipPath, zipBytes, entries } = get(stage);
    expect((await stat(zipPath)).isFile()).toBe(true);
    expect(zipBytes).toBeGreaterThan(0);
    console.log(`[serverless package] ${stage} ${path.basename(zipPath)}: ${zipBytes} bytes zipped`);
    const files = entries.filter((e) => !e.name.endsWith('/'));
    expect(files.map((e) => e.name)).toEqual(['functions/upload.mjs']);
    expect(entries.some((e) => e.name.split('/').includes('node_modules'))).toBe(false);
  });

  // serverless.yml's `custom.esbuild.plugins`: an ES import of node:http would load undici at
  // every cold start (test/unit/build.test.ts runs a bundle to see that).
  it("loads Node's built-ins through require(): its only ES import is the banner's node:module", async () => {
    const { zipPath, entries } = get(stage);
    const handler = entries.find((e) => e.name === 'functions/upload.mjs')!;
    const text = readZipEntry(await readFile(zipPath), handler).toString('utf8');
    expect(text.length).toBe(handler.size);
    const imported = [...text.matchAll(/\bimport\s*(?:\{[^{}]*\}|[\w$]+|\*\s*as\s+[\w$]+)\s*from\s*["']([^"']+)["']/g)].map(
      (m) => m[1],
    );
    expect(imported).toEqual(['node:module']);
    expect(text).toMatch(/\(\s*"node:http"\s*\)/);
  });
});

describe('serverless package refuses stages and callers it cannot deploy as meant', () => {
  const refusal = (stage: string, params: string[], label: string) =>
    packageStage(stage, params, label).then(
      () => '',
      (err: unknown) => String(err),
    );

  it(
    'refuses a stage serverless.yml does not configure, naming it',
    async () => {
      const message = await refusal('qa', [], 'guard-qa');
      expect(message).toContain('Stage "qa" is not configured in serverless.yml (known stages: dev, staging, prod)');
      expect(message).toContain('--param="allowDefaults=true"');
    },
    PACKAGE_TIMEOUT_MS,
  );

  it.each([
    ['Prod', 'S3 allows only lower-case letters'],
    ['a-stage-name-far-too-long-for-s3', 'characters long (S3 allows 3 to 63)'],
  ])(
    'refuses stage %s, whose bucket name S3 would refuse, even with allowDefaults',
    async (stage, why) => {
      const message = await refusal(stage, ['--param=allowDefaults=true'], `guard-${stage.toLowerCase().slice(0, 8)}`);
      expect(message).toContain(
        `Stage "${stage}" gives the bucket name "s3-stream-upload-${stage}-<account-id>-us-east-1", which S3 refuses`,
      );
      expect(message).toContain(why);
    },
    PACKAGE_TIMEOUT_MS,
  );

  it.each([['*'], ['arn:aws:iam::111122223333:role/ok,arn:aws:iam::111122223333:user/alice']])(
    'refuses callerRoleArns=%s',
    async (arns) => {
      const message = await refusal('dev', [`--param=callerRoleArns=${arns}`], `guard-arn-${arns.length}`);
      expect(message).toMatch(/callerRoleArns: ".*" is not an IAM role ARN/);
    },
    PACKAGE_TIMEOUT_MS,
  );

  it(
    'packages an unlisted stage with the defaults when allowDefaults says so',
    async () => {
      const { template } = await packageStage('qa', ['--param=allowDefaults=true'], 'guard-qa-defaults');
      expect(uploadFunction(template).Properties.FunctionName).toBe('s3-stream-upload-qa-upload');
      expect(uploadFunction(template).Properties.MemorySize).toBe(512);
    },
    PACKAGE_TIMEOUT_MS,
  );
});
