// Builds the native Runtime API client of aws-lambda-ric (AWS's Node runtime interface client,
// the code of the managed nodejs24.x runtime), which the Lambda tests run the function under.
// Run by `npm install` (the root package's postinstall); does nothing when the addon is built.
//
// Why not the package's own install scripts (allowScripts: false): its postinstall runs
// node-gyp, which must be given the headers of the pinned Node 24 (it cannot download them
// here). Only an absolute `npm_config_nodedir` works, and a project .npmrc cannot express one
// (a relative path is taken from node-gyp's working directory). The build itself is the
// package's own scripts, unchanged.
//
// It needs cmake, make, gcc, g++, python3 and xz (Debian). A fresh machine of this project's
// kind may lack cmake: as root with apt-get, the missing ones are installed from Debian.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const require = createRequire(join(ROOT, 'package.json'));
const log = (message) => console.log(`[build-lambda-ric] ${message}`);

/** The directory of aws-lambda-ric in node_modules, or undefined (a production install). */
function ricDir() {
  try {
    return dirname(require.resolve('aws-lambda-ric/package.json'));
  } catch {
    return undefined;
  }
}

/**
 * Whether the built addon loads in the Node that runs npm scripts. In a child process: the
 * addon reads AWS_LAMBDA_RUNTIME_API when it loads and aborts the process without it.
 */
function addonLoads(dir) {
  const addon = join(dir, 'rapid-client.node');
  if (!existsSync(addon)) return false;
  const res = spawnSync(process.execPath, ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(addon)})`], {
    env: { ...process.env, AWS_LAMBDA_RUNTIME_API: '127.0.0.1:9' },
    encoding: 'utf8',
  });
  if (res.status === 0) return true;
  log(`${addon} does not load (${res.stderr.trim().split('\n')[0] || `signal ${res.signal}`}): rebuilding`);
  return false;
}

/**
 * Node's headers for node-gyp, of exactly the Node that runs this script (the pinned Node 24):
 * the include/ of the registry package the `node` devDependency takes its binary from. That
 * package is not kept under node_modules (npm prunes it as extraneous at the next install),
 * so its include/ is unpacked once into node_modules/.cache; npm's cache usually has it.
 */
function nodeHeadersDir() {
  const platform = process.platform === 'win32' ? 'win' : process.platform;
  const prefix = process.platform === 'darwin' && process.arch === 'arm64' ? 'node-bin' : 'node';
  const spec = `${prefix}-${platform}-${process.arch}@${process.version.slice(1)}`;
  const dir = join(ROOT, 'node_modules', '.cache', 'node-headers', process.version);
  if (existsSync(join(dir, 'include', 'node', 'common.gypi'))) return dir;
  const tmp = mkdtempSync(join(tmpdir(), 'node-headers-'));
  try {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', spec, '--json', '--pack-destination', tmp], { encoding: 'utf8' }));
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['xzf', join(tmp, packed.filename), '-C', dir, '--strip-components=1', 'package/include']);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!existsSync(join(dir, 'include', 'node', 'common.gypi'))) throw new Error(`${spec} ships no include/node headers`);
  return dir;
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function ensureBuildTools() {
  const needed = [
    { cmd: 'cmake', pkg: 'cmake', alt: 'cmake3' },
    { cmd: 'make', pkg: 'make' },
    { cmd: 'gcc', pkg: 'gcc' },
    { cmd: 'g++', pkg: 'g++' },
    { cmd: 'python3', pkg: 'python3' },
    { cmd: 'xz', pkg: 'xz-utils' },
  ];
  const missing = needed.filter((t) => !has(t.cmd) && !(t.alt && has(t.alt))).map((t) => t.pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !has('apt-get')) {
    throw new Error(`missing build tools: ${missing.join(', ')}; install them (Debian: apt-get install ${missing.join(' ')})`);
  }
  log(`installing from Debian: ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function build(dir) {
  ensureBuildTools();
  const env = { ...process.env, npm_config_nodedir: nodeHeadersDir() };
  const started = Date.now();
  log(`building ${dir} against the headers in ${env.npm_config_nodedir} (about a minute)`);
  // The package's own install steps: curl and aws-lambda-cpp from its bundled sources, then
  // the node-gyp addon. Their output goes to a log unless they fail.
  for (const step of ['preinstall', 'postinstall']) {
    const res = spawnSync('sh', [`./scripts/${step}.sh`], { cwd: dir, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
    if (res.status !== 0) {
      process.stderr.write(res.stdout.slice(-20_000) + res.stderr.slice(-20_000));
      throw new Error(`aws-lambda-ric ${step}.sh failed (exit ${res.status})`);
    }
  }
  if (!addonLoads(dir)) throw new Error('rapid-client.node was not built');
  log(`built in ${Math.round((Date.now() - started) / 1000)} s`);
}

const dir = ricDir();
if (!dir) log('aws-lambda-ric is not installed (production install): nothing to build');
else if (addonLoads(dir)) log('rapid-client.node is built');
else build(dir);
