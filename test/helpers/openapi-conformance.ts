/**
 * Holds responses to the OpenAPI document (src/app/openapi.ts): the status must be one the
 * operation documents (explicitly, never only `default`), the content type one of that
 * response's media types, the required headers present and valid, and the body, or each
 * NDJSON line, valid against its schema (JSON Schema 2020-12, with Ajv in strict mode so a
 * misspelt keyword in the document fails too). The contract suite calls this on every
 * response of every transport, so the document cannot drift from the code.
 */
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { OPENAPI_DOCUMENT } from '../../src/app/openapi.ts';

type Json = Record<string, unknown>;

export interface CheckedRequest {
  method: string;
  path: string;
}

export interface CheckedResponse {
  status: number;
  /** Header names lowercased. */
  headers: Record<string, string>;
  body: string;
}

/** The document's schemas as one Ajv schema: `#/components/schemas/X` becomes `<id>#/$defs/X`. */
const SCHEMAS_ID = 'urn:s3-stream-upload:openapi:schemas';

/** OpenAPI 3.1 keywords a Schema Object may carry on top of JSON Schema (annotations for Ajv). */
const OAS_KEYWORDS = ['discriminator', 'xml', 'externalDocs', 'example'];

/** The helper for one document (the service's, unless a test hands in another one). */
export function createConformanceChecker(document: Json = OPENAPI_DOCUMENT as unknown as Json) {
  const doc = JSON.parse(JSON.stringify(document).replaceAll('"#/components/schemas/', `"${SCHEMAS_ID}#/$defs/`)) as Json;
  const components = (doc['components'] ?? {}) as Json;
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats.default(ajv);
  ajv.addVocabulary(OAS_KEYWORDS);
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: components['schemas'] ?? {} });
  const compiled = new Map<object, ValidateFunction>();
  const validator = (schema: object): ValidateFunction => {
    let fn = compiled.get(schema);
    if (!fn) compiled.set(schema, (fn = ajv.compile(schema)));
    return fn;
  };

  const deref = (value: unknown): Json => {
    let v = value as Json;
    for (let i = 0; typeof v?.['$ref'] === 'string' && i < 10; i++) {
      const pointer = (v['$ref'] as string)
        .replace(`${SCHEMAS_ID}#/$defs/`, '#/components/schemas/')
        .replace(/^#\//, '')
        .split('/');
      v = pointer.reduce<unknown>((node, key) => (node as Json | undefined)?.[key], doc) as Json;
    }
    return v;
  };

  const paths = (doc['paths'] ?? {}) as Record<string, Json>;
  const templates = Object.keys(paths).map((template) => ({
    template,
    pattern: new RegExp('^' + template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  }));
  /** Concrete paths win over templated ones, as OpenAPI says. */
  const findPath = (path: string): string | undefined =>
    paths[path] !== undefined ? path : templates.find((t) => t.pattern.test(path))?.template;

  /** What does not conform, as sentences; empty when the response conforms. */
  function check(req: CheckedRequest, res: CheckedResponse): string[] {
    const method = req.method.toLowerCase();
    const where = `${req.method} ${req.path.length > 60 ? req.path.slice(0, 60) + '…' : req.path} -> ${res.status}`;
    const template = findPath(req.path);
    const operation = template ? (paths[template]![method === 'head' ? 'get' : method] as Json | undefined) : undefined;
    let response: Json | undefined;
    if (!template) {
      if (res.status !== 404) return [`${where}: the path is not in the document, so only 404 (NotFound) is documented`];
      response = deref((components['responses'] as Json)['NotFound']);
    } else if (!operation) {
      if (res.status !== 405) return [`${where}: ${method} is not documented on ${template}, so only 405 (MethodNotAllowed) is`];
      response = deref((components['responses'] as Json)['MethodNotAllowed']);
    } else {
      const responses = operation['responses'] as Json;
      if (responses[String(res.status)] === undefined) {
        return [
          `${where}: status not documented for ${operation['operationId'] as string} (documented: ${Object.keys(responses).join(', ')})`,
        ];
      }
      response = deref(responses[String(res.status)]);
    }

    const problems: string[] = [];
    for (const [name, header] of Object.entries((response['headers'] ?? {}) as Json)) {
      const h = deref(header);
      const value = res.headers[name.toLowerCase()];
      if (value === undefined) {
        if (h['required']) problems.push(`${where}: header ${name} missing`);
        continue;
      }
      const schema = h['schema'] as Json;
      const parsed = schema['type'] === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
      const valid = validator(schema);
      if (!valid(parsed)) problems.push(`${where}: header ${name}: ${JSON.stringify(value)} ${ajv.errorsText(valid.errors)}`);
    }

    const content = response['content'] as Record<string, Json> | undefined;
    const contentType = res.headers['content-type'];
    if (!content) {
      if (res.body !== '' && method !== 'head')
        problems.push(`${where}: documented without a body, got ${res.body.length} chars`);
      return problems;
    }
    const media = contentType?.split(';', 1)[0]!.trim().toLowerCase();
    if (!media || !content[media]) {
      return [
        ...problems,
        `${where}: content type ${contentType ?? '(none)'} not documented (documented: ${Object.keys(content).join(', ')})`,
      ];
    }
    if (method === 'head') return problems;
    const schema = content[media]['schema'] as Json;
    // NDJSON: the schema describes one line (OpenAPI 3.1 has no item schema for sequences).
    const values = media === 'application/x-ndjson' ? ndjsonLines(res.body) : [res.body];
    for (const [i, text] of values.entries()) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        problems.push(
          `${where}: ${media === 'application/x-ndjson' ? `line ${i + 1}` : 'body'} is not JSON: ${text.slice(0, 80)}`,
        );
        continue;
      }
      const valid = validator(branch(schema, value));
      if (!valid(value)) {
        const line = media === 'application/x-ndjson' ? ` line ${i + 1}` : '';
        problems.push(`${where}:${line} ${ajv.errorsText(valid.errors)} in ${text.slice(0, 300)}`);
      }
    }
    return problems;
  }

  /**
   * The one schema of a `oneOf` with a discriminator that the value names (its `type`), so
   * that a bad event line is reported against its own schema instead of every branch's.
   */
  function branch(schema: Json, value: unknown): Json {
    const target = deref(schema);
    const discriminator = target['discriminator'] as { propertyName: string; mapping?: Record<string, string> } | undefined;
    const name = (value as Json | null)?.[discriminator?.propertyName ?? ''];
    const mapped = typeof name === 'string' ? discriminator?.mapping?.[name] : undefined;
    return mapped ? { $ref: mapped.replace('#/components/schemas/', `${SCHEMAS_ID}#/$defs/`) } : schema;
  }

  return {
    check,
    /** Throws, naming every problem, when the response does not conform. */
    expectConforming(req: CheckedRequest, res: CheckedResponse): void {
      const problems = check(req, res);
      if (problems.length) throw new Error(`Response does not conform to openapi.json:\n- ${problems.join('\n- ')}`);
    },
    /** Compiles a schema of the document (for tests of the document itself). */
    compile: validator,
    schemasId: SCHEMAS_ID,
  };
}

function ndjsonLines(body: string): string[] {
  if (body === '') return [''];
  const lines = body.split('\n');
  // Every line ends with \n: the last piece is empty; a body without it is a broken stream.
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

let shared: ReturnType<typeof createConformanceChecker> | undefined;

/** The service's document's checker, built once per test file. */
export function expectConforming(req: CheckedRequest, res: CheckedResponse): void {
  (shared ??= createConformanceChecker()).expectConforming(req, res);
}
