/**
 * The server as `npm start` runs it (the esbuild bundle, built fresh from the sources) in a
 * child process, so its memory can be read from the OS apart from the test's own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { buildServer } from '../../scripts/build.mjs';

/** The Node flags of `npm start`, read from package.json (`exec node <flags> dist/server.mjs`). */
export const NPM_START_FLAGS: readonly string[] = (() => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const m = /^(?:exec\s+)?node((?:\s+--\S+)*)\s+dist\/server\.mjs$/.exec(pkg.scripts['start'] ?? '');
  if (!m) throw new Error(`package.json scripts.start is not "exec node <flags> dist/server.mjs": ${pkg.scripts['start']}`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
})();

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** A /proc/<pid>/status figure in KiB: VmRSS now, VmHWM the peak so far. */
  statusKiB(field: 'VmRSS' | 'VmHWM'): Promise<number>;
  stop(): void;
}

export interface ServerProcessOptions {
  /** Environment of the server (PATH is added). */
  env: Record<string, string>;
  /** Extra Node flags, e.g. `--inspect=127.0.0.1:0`. */
  nodeArgs?: string[];
  /** The Node binary; default the one running the tests. */
  node?: string;
  /** Every chunk the server writes to stdout / stderr. */
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
}

export async function statusKiB(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const bundle = await buildServer();
  const child = spawn(options.node ?? process.execPath, [...(options.nodeArgs ?? NPM_START_FLAGS), bundle], {
    env: { PATH: process.env['PATH'], ...options.env },
    stdio: ['ignore', 'pipe', options.onStderr ? 'pipe' : 'inherit'],
  });
  if (options.onStderr) child.stderr!.on('data', (d: Buffer) => options.onStderr!(d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      const text = d.toString();
      out += text;
      options.onStdout?.(text);
      const m = /listening on (http:\/\/[^\s"]+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${out}`)));
  });
  return { child, url, statusKiB: (field) => statusKiB(child.pid!, field), stop: () => child.kill('SIGTERM') };
}
