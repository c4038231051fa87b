/**
 * The OpenAPI document itself: valid OpenAPI 3.1, in step with the code's tables (error codes
 * and statuses, the route table), the same as the repo's openapi.json, served open by the
 * app, and usable by a generator. That responses conform to it is the contract suite's job
 * (test/integration/contract.test.ts calls test/helpers/openapi-conformance.ts on each one);
 * here the checker is shown to refuse what does not conform.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Validator } from '@seriousme/openapi-schema-validator';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../../src/app/app.ts';
import { OPENAPI_DOCUMENT, OPERATION_CODES, type OperationId } from '../../../src/app/openapi.ts';
import { matchRoute, TABLE } from '../../../src/app/routes.ts';
import { createLogger } from '../../../src/logger.ts';
import { ERROR_STATUS, type ErrorCode } from '../../../src/protocol.ts';
import { MemorySink } from '../../helpers/memory-sink.ts';
import { createConformanceChecker } from '../../helpers/openapi-conformance.ts';

type Json = Record<string, unknown>;
const doc = OPENAPI_DOCUMENT as unknown as Json;
const ROOT = new URL('../../../', import.meta.url);
const paths = doc['paths'] as Record<string, Record<string, Json>>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];
const operations = Object.entries(paths).flatMap(([path, item]) =>
  Object.entries(item)
    .filter(([method]) => METHODS.includes(method))
    .map(([method, op]) => ({ path, method, op })),
);
const example = (template: string) => template.replace(/\{[^}]+\}/g, 'abc');

describe('openapi document', () => {
  it('is valid OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('every schema compiles as JSON Schema 2020-12 with Ajv in strict mode (no misspelt keyword)', () => {
    const checker = createConformanceChecker();
    for (const name of Object.keys((doc['components'] as Json)['schemas'] as Json)) {
      expect(() => checker.compile({ $ref: `${checker.schemasId}#/$defs/${name}` }), name).not.toThrow();
    }
  });

  it("has exactly ERROR_STATUS's codes in its ErrorCode enum", () => {
    const schemas = (doc['components'] as Json)['schemas'] as Record<string, { enum: string[] }>;
    expect([...schemas['ErrorCode']!.enum].sort()).toEqual(Object.keys(ERROR_STATUS).sort());
  });

  it('documents each error code of an operation under its own status, with the code narrowed to that status', () => {
    for (const { op } of operations) {
      const id = op['operationId'] as OperationId;
      const responses = op['responses'] as Record<string, Json>;
      const codes = OPERATION_CODES[id] as readonly ErrorCode[];
      for (const code of codes) {
        const response = responses[String(ERROR_STATUS[code])];
        const schema = (response?.['content'] as Record<string, { schema: Json }>)['application/json']!.schema;
        const narrowed = ((schema['properties'] as Json)['error'] as { properties: { code: { enum: string[] } } }).properties
          .code;
        expect(narrowed.enum, `${id} ${code}`).toContain(code);
      }
      // No explicit status is left to `default`.
      expect(Object.keys(responses)).not.toContain('default');
    }
  });

  it('lists every route of the route table, and nothing the table does not answer', () => {
    for (const entry of TABLE) {
      const documented = operations.some((o) => o.method === entry.method.toLowerCase() && entry.pattern.test(example(o.path)));
      expect(documented, `${entry.method} ${entry.pattern}`).toBe(true);
    }
    for (const { path, method } of operations) {
      expect(matchRoute(method, example(path)).kind, `${method} ${path}`).not.toBe('error');
    }
  });

  it('is what the repo holds in openapi.json (npm run openapi writes it), at the package version', async () => {
    const onDisk = JSON.parse(await readFile(new URL('openapi.json', ROOT), 'utf8')) as unknown;
    expect(onDisk).toEqual(doc);
    const pkg = JSON.parse(await readFile(new URL('package.json', ROOT), 'utf8')) as { version: string };
    expect((doc['info'] as Json)['version']).toBe(pkg.version);
  });

  it('is served at GET /openapi.json without credentials even when tokens are configured, and conforms', async () => {
    const app = createApp({
      upload: {
        sink: new MemorySink(),
        limits: { maxFileBytes: 1, maxFiles: 1, maxFields: 1, maxFieldBytes: 1, maxTotalBytes: 1 },
        keyPrefix: 'u/',
      },
      logger: createLogger('silent'),
      authTokens: { billing: 'billing-token-0123456789' },
    });
    const res = await app.handle({
      method: 'GET',
      path: '/openapi.json',
      headers: {},
      body: Readable.from([]),
      signal: new AbortController().signal,
    });
    let body = '';
    for await (const chunk of res.body) body += chunk;
    expect(res.status).toBe(200);
    expect(JSON.parse(body)).toEqual(doc);
    createConformanceChecker().expectConforming({ method: 'GET', path: '/openapi.json' }, { ...res, body });
  });
});

describe('conformance checker', () => {
  const { check } = createConformanceChecker();
  const json = { 'content-type': 'application/json; charset=utf-8', 'x-request-id': 'r1' };
  const file = {
    field: 'f',
    filename: 'a.txt',
    key: 'uploads/1/a.txt',
    size: 1,
    contentType: 'text/plain',
    etag: '"x"',
    bucket: 'b',
    sha256: '',
  };
  const upload = { method: 'POST', path: '/uploads' };
  const error = (code: string) => JSON.stringify({ error: { code, message: 'm' } });

  it('accepts conforming answers', () => {
    expect(
      check(upload, { status: 201, headers: json, body: JSON.stringify({ files: [file], fields: { a: ['1', '2'] } }) }),
    ).toEqual([]);
    const ndjson = [
      { type: 'file-started', field: 'f', filename: 'a.txt', key: file.key, contentType: 'text/plain' },
      { type: 'file-stored', ...file },
      { type: 'done', files: [file], fields: {} },
    ];
    const lines = ndjson.map((l) => JSON.stringify(l) + '\n').join('');
    expect(
      check(upload, { status: 200, headers: { 'content-type': 'application/x-ndjson', 'x-request-id': 'r' }, body: lines }),
    ).toEqual([]);
    expect(check(upload, { status: 503, headers: { ...json, 'retry-after': '2' }, body: error('BUSY') })).toEqual([]);
    expect(check({ method: 'GET', path: '/nope' }, { status: 404, headers: json, body: error('NOT_FOUND') })).toEqual([]);
    expect(
      check({ method: 'DELETE', path: '/uploads/sessions/abc' }, { status: 204, headers: { 'x-request-id': 'r' }, body: '' }),
    ).toEqual([]);
  });

  it.each<[string, { method: string; path: string }, { status: number; headers: Record<string, string>; body: string }, RegExp]>([
    ['an undocumented status', upload, { status: 418, headers: json, body: '{}' }, /status not documented for upload/],
    ['a code of another status', upload, { status: 413, headers: json, body: error('BAD_REQUEST') }, /must be equal to one of/],
    [
      'a code the route never answers',
      upload,
      { status: 410, headers: json, body: error('SESSION_EXPIRED') },
      /status not documented/,
    ],
    ['a code outside ErrorCode', upload, { status: 400, headers: json, body: error('NOPE') }, /must be equal to one of/],
    [
      'a missing required property',
      upload,
      { status: 201, headers: json, body: JSON.stringify({ files: [{ ...file, key: undefined }], fields: {} }) },
      /must have required property 'key'/,
    ],
    [
      'an undocumented property',
      upload,
      { status: 201, headers: json, body: JSON.stringify({ files: [{ ...file, extra: 1 }], fields: {} }) },
      /must NOT have additional properties/,
    ],
    [
      'another content type',
      upload,
      { status: 201, headers: { ...json, 'content-type': 'text/plain' }, body: '{}' },
      /content type text\/plain not documented/,
    ],
    [
      'no x-request-id',
      upload,
      { status: 201, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ files: [], fields: {} }) },
      /header x-request-id missing/,
    ],
    ['BUSY without Retry-After', upload, { status: 503, headers: json, body: error('BUSY') }, /header retry-after missing/],
    [
      'a bad NDJSON line',
      upload,
      {
        status: 200,
        headers: { 'content-type': 'application/x-ndjson', 'x-request-id': 'r' },
        body: '{"type":"file-progress","field":"f","key":"k"}\n',
      },
      /line 1 .*bytes/,
    ],
    [
      'a line that is not JSON',
      upload,
      { status: 200, headers: { 'content-type': 'application/x-ndjson', 'x-request-id': 'r' }, body: 'oops\n' },
      /line 1 is not JSON/,
    ],
    [
      'a body on 204',
      { method: 'DELETE', path: '/uploads/sessions/abc' },
      { status: 204, headers: { 'x-request-id': 'r' }, body: 'x' },
      /without a body/,
    ],
    [
      '200 for an undocumented path',
      { method: 'GET', path: '/nope' },
      { status: 200, headers: json, body: '{}' },
      /not in the document/,
    ],
    [
      'an undocumented method answered',
      { method: 'GET', path: '/uploads' },
      { status: 200, headers: json, body: '{}' },
      /only 405/,
    ],
  ])('refuses %s', (_label, req, res, problem) => {
    expect(check(req, res).join('\n')).toMatch(problem);
  });
});

describe('a client generated from openapi.json', () => {
  it('openapi-typescript (the README command) gives types a caller compiles against', { timeout: 60_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'openapi-ts-'));
    try {
      const bin = new URL('node_modules/.bin/openapi-typescript', ROOT).pathname;
      await promisify(execFile)(bin, [new URL('openapi.json', ROOT).pathname, '-o', join(dir, 'upload-api.d.ts')]);
      const usage = [
        "import type { components, operations, paths } from './upload-api.d.ts';",
        "type Ok = operations['upload']['responses'][201]['content']['application/json'];",
        "type Line = paths['/uploads']['post']['responses'][200]['content']['application/x-ndjson'];",
        "type Session = components['schemas']['UploadSession'];",
        "const ok: Ok = { files: [{ field: 'f', filename: 'a', key: 'k', size: 1, contentType: 't', etag: '', bucket: 'b', sha256: '' }], fields: {} };",
        "const line: Line = { type: 'file-progress', field: 'f', key: 'k', bytes: 1 };",
        "const code: components['schemas']['ErrorCode'] = 'BUSY';",
        "const s: Pick<Session, 'partSize'> = { partSize: 5 };",
        '// @ts-expect-error: not an error code of the contract',
        "const bad: components['schemas']['ErrorCode'] = 'NOPE';",
        'export { ok, line, code, s, bad };',
      ].join('\n');
      await writeFile(join(dir, 'use.ts'), usage);
      const program = ts.createProgram([join(dir, 'use.ts')], {
        strict: true,
        noEmit: true,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        target: ts.ScriptTarget.ES2022,
        allowImportingTsExtensions: true,
        types: [],
      });
      const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      expect(diagnostics).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
