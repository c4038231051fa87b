// Assembles, without Docker, the exact file layout the Dockerfile's final stage holds, so that
// a test can start the server from it: the build stage is replayed in a scratch directory
// (its COPY lines from the build context, its `node ...` RUN lines; `npm ci` is stood in for
// by a link to this checkout's node_modules, installed from the same lockfile), then every
// COPY of the final stage is copied into the runtime directory. The Dockerfile is the only
// source of truth: change it and this follows.
//
//   node scripts/container-layout.mjs <empty-dir>     prints the layout as JSON
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Instructions of each stage: `{ name, from, instructions: [{ op, args }] }`. */
export function parseDockerfile(text) {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args = {};
  const stages = [];
  for (const line of lines) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile: cannot parse ${JSON.stringify(line)}`);
    const op = m[1].toUpperCase();
    const rest = m[2];
    if (op === 'ARG' && stages.length === 0) {
      const [k, v = ''] = rest.split('=');
      args[k] = v;
    } else if (op === 'FROM') {
      const fm = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const from = fm[1].replace(/\$\{(\w+)\}/g, (_, k) => args[k] ?? '');
      stages.push({ name: fm[2], from, instructions: [] });
    } else {
      stages.at(-1).instructions.push({ op, args: rest });
    }
  }
  return { args, stages };
}

/** `["a", "b"]` (exec form) or a shell string, as an argv. */
function argv(text) {
  const t = text.trim();
  return t.startsWith('[') ? JSON.parse(t) : ['/bin/sh', '-c', t];
}

function parseEnv(text) {
  const env = {};
  for (const m of text.matchAll(/(\w+)=("[^"]*"|\S*)/g)) env[m[1]] = m[2].replace(/^"|"$/g, '');
  return env;
}

/** COPY [--from=x] [--chown=...] src... dest */
function parseCopy(text) {
  const words = text.split(/\s+/);
  let from;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift();
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
  }
  const dest = words.pop();
  return { from, sources: words, dest };
}

async function copyInto(sources, dest, fromDir, fromWorkdir, toDir, toWorkdir) {
  const toAbs = (workdir, p) => path.posix.resolve(workdir, p);
  const target = path.join(toDir, toAbs(toWorkdir, dest));
  const intoDir = dest.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    const from = path.join(fromDir, toAbs(fromWorkdir, source));
    const isDir = (await stat(from)).isDirectory();
    // Docker copies a directory's contents, and a file into a directory ending in "/".
    const to = intoDir && !isDir ? path.join(target, path.basename(from)) : target;
    await mkdir(isDir ? to : path.dirname(to), { recursive: true });
    await cp(from, to, { recursive: true });
  }
}

/**
 * Builds the layout in `dir`: `<dir>/build` (the build stage's filesystem, /app of it) and
 * `<dir>/runtime` (the final stage's). Returns where the runtime's WORKDIR is and what the
 * image would run.
 */
export async function assembleContainerLayout(dir, { dockerfile = path.join(ROOT, 'Dockerfile') } = {}) {
  const { stages } = parseDockerfile(await readFile(dockerfile, 'utf8'));
  const final = stages.at(-1);
  const stageDirs = new Map();
  for (const stage of stages) {
    const root = path.join(dir, stage === final ? 'runtime' : `stage-${stage.name}`);
    await mkdir(root, { recursive: true });
    stageDirs.set(stage.name, { root, workdir: '/' });
    const here = stageDirs.get(stage.name);
    const image = { env: {}, user: 'root', cmd: undefined, healthcheck: undefined, expose: [] };
    for (const { op, args } of stage.instructions) {
      if (op === 'WORKDIR') {
        here.workdir = path.posix.resolve(here.workdir, args);
        await mkdir(path.join(root, here.workdir), { recursive: true });
      } else if (op === 'COPY') {
        const { from, sources, dest } = parseCopy(args);
        const source = from ? stageDirs.get(from) : { root: ROOT, workdir: '/' };
        if (!source) throw new Error(`Dockerfile: COPY --from=${from}: no such stage`);
        await copyInto(sources, dest, source.root, source.workdir, root, here.workdir);
      } else if (op === 'RUN') {
        const cwd = path.join(root, here.workdir);
        const command = argv(args);
        const shell = command.join(' ');
        if (/^\/bin\/sh -c npm ci\b/.test(shell)) {
          // Same lockfile: this checkout's install stands in for the registry.
          if (stage === final) throw new Error('Dockerfile: the runtime stage must not install packages');
          await symlink(path.join(ROOT, 'node_modules'), path.join(cwd, 'node_modules'), 'dir');
        } else if (command[2]?.startsWith('node ')) {
          execFileSync(process.execPath, command[2].split(/\s+/).slice(1), { cwd, stdio: 'inherit' });
        } else {
          throw new Error(`Dockerfile: cannot replay RUN ${args}`);
        }
      } else if (op === 'ENV') Object.assign(image.env, parseEnv(args));
      else if (op === 'USER') image.user = args;
      else if (op === 'EXPOSE') image.expose.push(...args.split(/\s+/));
      else if (op === 'CMD') image.cmd = argv(args);
      else if (op === 'HEALTHCHECK') image.healthcheck = argv(args.replace(/^(--\S+\s+)*CMD\s+/, ''));
      else if (op !== 'ARG') throw new Error(`Dockerfile: ${op} is not replayed by scripts/container-layout.mjs`);
    }
    if (stage === final) {
      return { from: stage.from, baseImages: stages.map((s) => s.from), root, workdir: path.join(root, here.workdir), ...image };
    }
  }
  throw new Error('Dockerfile: no stage');
}

/** Every file under `dir`, relative, sorted. */
export async function listFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isDirectory()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node scripts/container-layout.mjs <empty-dir>');
  const layout = await assembleContainerLayout(path.resolve(dir));
  console.log(JSON.stringify({ ...layout, files: await listFiles(layout.root) }, null, 2));
}
