import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { SERVER_BUILD_OPTIONS, buildFunction, buildServer, oneByteSource } from '../../scripts/build.mjs';
import { builtinsViaRequire } from '../../scripts/esbuild-plugins.mjs';

const dir = await mkdtemp(join(tmpdir(), 'build-test-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const BEYOND_LATIN1 = /[\u0100-\uffff]/;

describe('oneByteSource', () => {
  it('replaces each UTF-16 unit beyond Latin-1 by one character, so lines and columns stay', async () => {
    const file = join(dir, 'sample.mjs');
    const text = '/* ┌──┐ 😀 */ const a = "\\u2500";\n// × stays: Latin-1\nconsole.log(a);\n';
    await writeFile(file, text);
    await oneByteSource(file);
    const out = await readFile(file, 'utf8');
    expect(out).toBe('/* ???? ?? */ const a = "\\u2500";\n// × stays: Latin-1\nconsole.log(a);\n');
    expect(out.split('\n').map((l) => l.length)).toEqual(text.split('\n').map((l) => l.length));
  });

  it('leaves a file that is already Latin-1 as it is', async () => {
    const file = join(dir, 'latin1.mjs');
    await writeFile(file, 'console.log("é");\n');
    await oneByteSource(file);
    expect(await readFile(file, 'utf8')).toBe('console.log("é");\n');
  });
});

const serverBundle = buildServer(join(dir, 'server.mjs'));

describe('the server bundle', () => {
  // A dependency's doc comment draws boxes; kept, it made V8 hold the 2.4 MB source as UTF-16.
  it('holds no character beyond Latin-1', async () => {
    const text = await readFile(await serverBundle, 'utf8');
    expect(text.length).toBeGreaterThan(100_000);
    expect(BEYOND_LATIN1.exec(text)?.[0]).toBeUndefined();
  });

  // A CommonJS build (the AWS SDK's dist-cjs) is one module evaluated whole at start, every S3
  // operation with it; the ES builds let esbuild drop what the service never calls.
  it('takes the ES builds of its dependencies: no module from a dist-cjs folder', async () => {
    const text = await readFile(await serverBundle, 'utf8');
    // esbuild heads each module with a comment naming its file.
    expect(text.match(/^\/\/ node_modules\/\S+\/dist-es\//gm)?.length ?? 0).toBeGreaterThan(100);
    expect(text.match(/^\/\/ node_modules\/\S+\/dist-cjs\/.*$/gm) ?? []).toEqual([]);
  });
});

// Written to stderr once, when the process exits or is sent SIGUSR2 (then it exits): which of
// Node's lazily loaded parts it loaded. A handler of the preload's own, so a signal sent the
// moment the server says it listens does not race the server's handlers.
const REPORT_LOADED = `let done = false; const report = () => { if (done) return; done = true; process.getBuiltinModule('node:fs').writeSync(2, '\\nLOADED ' + JSON.stringify(process.moduleLoadList.filter((m) => /undici/.test(m))) + '\\n'); }; process.on('exit', report); process.on('SIGUSR2', () => { report(); process.exit(0); });`;
const PRELOAD = `data:text/javascript,${encodeURIComponent(REPORT_LOADED)}`;
const ENV = {
  PATH: process.env.PATH,
  UPLOAD_BUCKET: 'bench',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  LOG_LEVEL: 'error',
};

/** Runs node with `args` (the preload first), stopping it with SIGUSR2 once its stdout shows `ready`; resolves with what it loaded. */
function loadedBy(args: string[], env: Record<string, string | undefined>, ready?: RegExp): Promise<string[]> {
  const child = spawn(process.execPath, [`--import=${PRELOAD}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d;
    if (ready?.test(out)) child.kill('SIGUSR2');
  });
  child.stderr.on('data', (d: Buffer) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) =>
    child.once('exit', () => {
      clearTimeout(timer);
      const line = /^LOADED (.*)$/m.exec(err);
      if (line) resolve(JSON.parse(line[1]!) as string[]);
      else reject(new Error(`no report from the child: ${err.slice(-1000)} ${out.slice(-500)}`));
    }),
  );
}

// An ES import of a built-in reads every export of Node's facade, getters included:
// `node:http`'s WebSocket getter loads undici (and the web streams) into a process that never
// opens a WebSocket. Both bundles load built-ins through require() (scripts/esbuild-plugins.mjs).
describe("Node's built-ins in the bundles", () => {
  it('turns an ES import of a built-in into a require() of it, with or without node: and for dynamic import()', async () => {
    const entry = join(dir, 'imports-http.mjs');
    await writeFile(
      entry,
      "import { Agent } from 'node:http';\nimport os from 'os';\nexport const a = [Agent, os.EOL, import('node:v8')];\n",
    );
    const bundleWith = async (plugins: Plugin[]) =>
      (await build({ ...SERVER_BUILD_OPTIONS, plugins, entryPoints: [entry], write: false, sourcemap: false })).outputFiles[0]!
        .text;
    const withPlugin = await bundleWith([builtinsViaRequire]);
    for (const id of ['node:http', 'os', 'node:v8']) {
      expect(withPlugin).toContain(`require(${JSON.stringify(id)})`);
      expect(withPlugin).not.toMatch(new RegExp(`from\\s*"${id}"|import\\("${id}"\\)`));
    }
    // Without it the imports stay ES imports: the test above can tell them apart.
    expect(await bundleWith([])).toMatch(/from\s*"node:http"/);
  });

  it('the server bundle, up and serving, has not loaded undici', async () => {
    const loaded = await loadedBy(
      [await serverBundle],
      { ...ENV, PORT: '0', HOST: '127.0.0.1', S3_ENDPOINT: 'http://127.0.0.1:9' },
      /listening on http/,
    );
    expect(loaded.filter((m) => m.includes('undici'))).toEqual([]);
  });

  it('the Lambda bundle, imported as the runtime does, has not loaded undici', async () => {
    const bundle = await buildFunction(join(dir, 'upload-function.mjs'));
    const loaded = await loadedBy(
      ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(bundle).href)});`],
      ENV,
    );
    expect(loaded.filter((m) => m.includes('undici'))).toEqual([]);
  });
});
