/**
 * The command line client:
 *
 *   s3-stream-upload put FILE... --url URL [--token TOKEN | --sigv4 [REGION[:SERVICE]]]
 *                    [--field NAME=VALUE]... [--state FILE] [--json]
 *
 * On a terminal it draws a progress bar (bytes/s, ETA) on stderr and prints one line per
 * stored file; piped, it prints one JSON document on stdout and nothing else there.
 * Exit codes: 0 stored, 1 client error (bad usage, unreadable file, refused by the service:
 * 4xx), 2 server error (5xx, network, retries exhausted), 130 cancelled (SIGINT/SIGTERM).
 * With --state, a cancel keeps the direct-lane sessions open and writes them to the state
 * file, so that the same command run again sends only the missing parts.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  createUploadClient,
  inferSigV4,
  UploadClientError,
  type SessionState,
  type SigV4Options,
  type UploadedFile,
} from './index.ts';
import { createProgressBar, formatBytes } from './progress-bar.ts';

export const EXIT = { OK: 0, CLIENT_ERROR: 1, SERVER_ERROR: 2, CANCELLED: 130 } as const;

export interface CliIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  env: Record<string, string | undefined>;
  /** Aborts the run (the launcher wires SIGINT/SIGTERM to it). */
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

const USAGE = `Usage: s3-stream-upload put FILE... --url URL [options]

Uploads files to an s3-stream-upload service. Files up to --stream-max go in one streamed
POST /uploads; larger files go straight to S3 through an upload session (parallel parts).

Options:
  --url URL            service base URL (or S3_STREAM_UPLOAD_URL)
  --token TOKEN        bearer token (or S3_STREAM_UPLOAD_TOKEN, which keeps it out of ps)
  --header 'K: V'      extra header for the service, repeatable (e.g. 'x-api-key: ...')
  --sigv4 [R[:S]]      sign every call to the service with AWS SigV4 (IAM auth), region R,
                       service S (default lambda); bare, both come from a *.lambda-url or
                       *.execute-api URL. Credentials: the AWS SDK chain (AWS_* variables,
                       AWS_PROFILE, SSO, roles)
  --field NAME=VALUE   metadata stored with every file, repeatable
  --concurrency N      parts in flight per large file (default 4)
  --retries N          retries per request (default 4)
  --stream-max SIZE    largest file for the stream-through lane (default 4MiB)
  --state FILE         keep interrupted direct uploads (Ctrl-C included) in FILE and
                       resume them from it
  --json               JSON output even on a terminal
  --no-progress        no progress bar
  -h, --help           this text

Exit codes: 0 stored, 1 client error (usage, unreadable file, 4xx), 2 server error (5xx,
network), 130 cancelled.
`;

function parseSize(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$/i.exec(text);
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase().replace(/b$/, '');
  const mult: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 };
  const factor = mult[unit];
  return factor === undefined ? undefined : Math.round(Number(m[1]) * factor);
}

interface StateFile {
  version: 1;
  sessions: SessionState[];
}

async function loadState(path: string): Promise<SessionState[]> {
  try {
    const data = JSON.parse(await readFile(path, 'utf8')) as StateFile;
    return Array.isArray(data.sessions) ? data.sessions : [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new UploadClientError('FILE_ERROR', `Cannot read the state file ${path}: ${String(err)}`);
  }
}

async function saveState(path: string, sessions: SessionState[]): Promise<void> {
  if (sessions.length === 0) {
    await rm(path, { force: true });
    return;
  }
  // Write then rename: a crash never leaves half a state file.
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ version: 1, sessions } satisfies StateFile, null, 2));
  await rename(tmp, path);
}

/** A region, optionally with a signing name: `eu-west-1`, `us-gov-west-1:execute-api`. */
const SIGV4_VALUE = /^[a-z]{2}(-[a-z]+)+-\d+(:[a-z0-9-]+)?$/;

/**
 * `--sigv4` takes an optional value, which parseArgs cannot express: a bare `--sigv4` (next
 * word not a region) becomes `--sigv4=` so that a file name after it stays a file name.
 */
function expandSigV4(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg !== '--sigv4') {
      out.push(arg);
      continue;
    }
    const next = argv[i + 1];
    if (next !== undefined && SIGV4_VALUE.test(next)) {
      out.push(`--sigv4=${next}`);
      i++;
    } else {
      out.push('--sigv4=');
    }
  }
  return out;
}

export async function main(argv: string[], io: CliIo = defaultIo()): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: expandSigV4(argv),
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        header: { type: 'string', multiple: true },
        sigv4: { type: 'string' },
        field: { type: 'string', multiple: true },
        concurrency: { type: 'string' },
        retries: { type: 'string' },
        'stream-max': { type: 'string' },
        state: { type: 'string' },
        json: { type: 'boolean' },
        'no-progress': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return EXIT.CLIENT_ERROR;
  }
  const { values, positionals } = args;
  if (values.help) {
    io.stdout.write(USAGE);
    return EXIT.OK;
  }
  const [command, ...files] = positionals;
  const url = values.url ?? io.env['S3_STREAM_UPLOAD_URL'];
  const usage = (message: string) => {
    io.stderr.write(`${message}\n\n${USAGE}`);
    return EXIT.CLIENT_ERROR;
  };
  if (command !== 'put') return usage(command ? `Unknown command ${JSON.stringify(command)}` : 'Missing command');
  if (files.length === 0) return usage('Missing FILE');
  if (!url || !/^https?:\/\//i.test(url)) return usage('--url must be an http(s) URL');
  const count = (name: string, raw: string | undefined, def: number, min: number) => {
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be a whole number >= ${min}`);
    return n;
  };
  const headers: Record<string, string> = {};
  const fields: Record<string, string> = {};
  let sigv4: SigV4Options | true | undefined;
  let partConcurrency: number;
  let retries: number;
  let streamMaxBytes: number | undefined;
  try {
    for (const h of values.header ?? []) {
      const at = h.indexOf(':');
      if (at <= 0) throw new Error(`--header must look like 'Name: value', got ${JSON.stringify(h)}`);
      headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
    }
    for (const f of values.field ?? []) {
      const at = f.indexOf('=');
      if (at <= 0) throw new Error(`--field must look like name=value, got ${JSON.stringify(f)}`);
      fields[f.slice(0, at)] = f.slice(at + 1);
    }
    if (values.sigv4 !== undefined) {
      if (values.sigv4 === '') {
        inferSigV4(url);
        sigv4 = true;
      } else {
        if (!SIGV4_VALUE.test(values.sigv4))
          throw new Error(`--sigv4 takes REGION[:SERVICE], got ${JSON.stringify(values.sigv4)}`);
        const [region, service] = values.sigv4.split(':') as [string, string | undefined];
        sigv4 = { region, ...(service ? { service } : {}) };
      }
    }
    partConcurrency = count('concurrency', values.concurrency, 4, 1);
    retries = count('retries', values.retries, 4, 0);
    if (values['stream-max'] !== undefined) {
      streamMaxBytes = parseSize(values['stream-max']);
      if (streamMaxBytes === undefined) throw new Error('--stream-max must be a size such as 4MiB');
    }
  } catch (err) {
    return usage((err as Error).message);
  }

  const json = values.json === true || !io.stdout.isTTY;
  const bar =
    !values['no-progress'] && io.stderr.isTTY ? createProgressBar((t) => io.stderr.write(t), io.stderr.columns || 80) : undefined;
  const token = values.token ?? io.env['S3_STREAM_UPLOAD_TOKEN'];
  const client = createUploadClient({
    url,
    ...(token ? { token } : {}),
    headers,
    ...(sigv4 ? { sigv4 } : {}),
    partConcurrency,
    retries,
    ...(streamMaxBytes !== undefined ? { streamMaxBytes } : {}),
    ...(io.fetch ? { fetch: io.fetch } : {}),
  });

  // The state file follows every part (a few hundred bytes per part of several MiB), so a
  // crash loses at most the parts in flight. Writes are serialized; the latest state wins.
  const statePath = values.state;
  const sessions = new Map<string, SessionState>();
  let stateWrite = Promise.resolve();
  let stateDirty = false;
  const persist = () => {
    if (!statePath || stateDirty) return;
    stateDirty = true;
    stateWrite = stateWrite
      .then(() => {
        stateDirty = false;
        return saveState(statePath, [...sessions.values()]);
      })
      .catch(() => {});
  };

  try {
    const resume = statePath ? await loadState(statePath) : [];
    for (const s of resume) sessions.set(s.path, s);
    const stored: UploadedFile[] = await client.upload(files, {
      ...(io.signal ? { signal: io.signal } : {}),
      resumable: statePath !== undefined,
      // Ctrl-C is the most common interruption: with --state it keeps the sessions to resume.
      keepSessionsOnAbort: statePath !== undefined,
      resume,
      ...(Object.keys(fields).length ? { fields } : {}),
      onSession: (s) => {
        sessions.set(s.path, s);
        persist();
      },
      onProgress: (p) => bar?.update(p.totalBytes, p.totalSize, files.length > 1 ? `file ${p.index + 1}/${files.length}` : ''),
    });
    bar?.clear();
    for (const f of stored) if (f.path !== undefined) sessions.delete(f.path);
    persist();
    await stateWrite;
    if (json) io.stdout.write(`${JSON.stringify({ files: stored })}\n`);
    else for (const f of stored) io.stdout.write(`${f.filename}  ${formatBytes(f.size)}  ${f.lane}  s3://${f.bucket}/${f.key}\n`);
    return EXIT.OK;
  } catch (err) {
    bar?.clear();
    const error =
      err instanceof UploadClientError
        ? err
        : new UploadClientError('FILE_ERROR', err instanceof Error ? err.message : String(err));
    if (statePath) {
      // Keep what can be resumed; a cancelled or finally refused session is gone.
      for (const [path, s] of sessions) if (!error.sessions.some((e) => e.sessionId === s.sessionId)) sessions.delete(path);
      for (const s of error.sessions) sessions.set(s.path, s);
      persist();
      await stateWrite;
    }
    if (json) {
      io.stdout.write(
        `${JSON.stringify({ error: { code: error.code, message: error.message, ...(error.status ? { status: error.status } : {}) } })}\n`,
      );
    }
    io.stderr.write(`s3-stream-upload: ${error.message}\n`);
    if (statePath && error.sessions.length) {
      io.stderr.write(`s3-stream-upload: run the same command again to resume (state in ${statePath})\n`);
    }
    return error.kind === 'aborted' ? EXIT.CANCELLED : error.kind === 'client' ? EXIT.CLIENT_ERROR : EXIT.SERVER_ERROR;
  }
}

function defaultIo(): CliIo {
  const controller = new AbortController();
  const cancel = () => controller.abort(new UploadClientError('ABORTED', 'Cancelled'));
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  return { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: controller.signal };
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
