// A local Lambda: a Runtime API server on loopback, and the function started as the managed
// nodejs24.x runtime starts it, under AWS's own runtime interface client (npm aws-lambda-ric,
// the code of that runtime) in a child process: `_HANDLER`, `LAMBDA_TASK_ROOT`,
// `AWS_LAMBDA_RUNTIME_API` and the other variables Lambda sets, and no others but the
// function's own. What the tests see is then what the runtime does, not what a stand-in
// believes it does (docs/lambda-runtime.md lists what differs):
// - the response is a chunked POST to /invocation/{id}/response, streamed, with the runtime's
//   error trailers after what was written when the handler rejects;
// - the sandbox is frozen (SIGSTOP) while the runtime waits on /invocation/next, as Lambda
//   freezes it between invocations, so stray timers run in the next invocation;
// - at the deadline the sandbox is killed, as Lambda does on a timeout; a process that exits
//   (an unhandled rejection kills it) ends the invocation, and the next one starts a new one.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { clearTimeout, setTimeout } from 'node:timers';

export const HTTP_INTEGRATION_CONTENT_TYPE = 'application/vnd.awslambda.http-integration-response';
const API = '/2018-06-01/runtime';
const DELIMITER = Buffer.alloc(8);

/** The runtime client's entry point (what the managed runtime's bootstrap runs). */
export function runtimeClientEntry() {
  const dir = dirname(createRequire(import.meta.url).resolve('aws-lambda-ric/package.json'));
  if (!existsSync(join(dir, 'rapid-client.node'))) {
    throw new Error(`${dir}/rapid-client.node is not built: run npm install (scripts/build-lambda-ric.mjs builds it)`);
  }
  return join(dir, 'index.mjs');
}

/**
 * Splits an HTTP integration response into prelude and body. Without the 8-NUL delimiter (the
 * runtime wrote none: `end(data)` with no earlier `write()`) there is no prelude, so no status.
 */
export function parseHttpIntegrationResponse(contentType, raw) {
  if (contentType !== HTTP_INTEGRATION_CONTENT_TYPE) return { prelude: undefined, body: raw };
  const at = raw.indexOf(DELIMITER);
  if (at < 0) return { prelude: undefined, body: raw };
  let prelude;
  try {
    prelude = JSON.parse(raw.subarray(0, at).toString('utf8'));
  } catch {
    return { prelude: undefined, body: raw };
  }
  return { prelude, body: raw.subarray(at + 8) };
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Starts the Runtime API server; the function's process starts at the first invocation (a cold
 * start) and again after it died or was killed.
 */
export async function startLambdaRuntime({
  taskRoot,
  handler,
  env = {},
  functionName = 'local-function',
  memoryMB = 1024,
  freeze = true,
  onLog,
}) {
  const entry = runtimeClientEntry();
  const logs = [];
  let port;
  let sandbox; // { child, exited, frozen, parked: ServerResponse | undefined, initError }
  let current; // the invocation handed to (or waiting for) the runtime
  let queue = Promise.resolve();
  let starts = 0;
  let seq = 0;

  const server = createServer((req, res) => {
    route(req, res).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  port = server.address().port;

  const accepted = (res) => {
    res.writeHead(202, { 'Content-Type': 'application/json' });
    res.end('{"status":"OK"}');
  };

  async function route(req, res) {
    const url = new URL(req.url, 'http://runtime');
    const box = sandbox;
    if (req.method === 'GET' && url.pathname === `${API}/invocation/next`) {
      // Asking for the next event ends the one in flight (Lambda's definition of done).
      if (current?.handedOver) finish(current, {});
      if (!box || box.exited) return;
      box.parked = res;
      if (current && !current.handedOver) handOver(box, current);
      else if (freeze) {
        box.frozen = true;
        box.child.kill('SIGSTOP');
      }
      return;
    }
    const invocation = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(url.pathname);
    if (req.method === 'POST' && invocation) {
      const inv = current?.id === decodeURIComponent(invocation[1]) ? current : undefined;
      if (invocation[2] === 'error') {
        const body = await readBody(req);
        if (inv)
          inv.error = { type: req.headers['lambda-runtime-function-error-type'], ...JSON.parse(body.toString('utf8') || '{}') };
        return accepted(res);
      }
      if (inv) {
        inv.responseMode = req.headers['lambda-runtime-function-response-mode'];
        inv.contentType = req.headers['content-type'];
      }
      req.on('data', (chunk) => {
        if (!inv) return;
        inv.chunks.push(chunk);
        inv.onChunk?.(chunk);
      });
      await new Promise((resolve, reject) => {
        req.on('end', resolve);
        req.on('error', reject);
      });
      if (inv) {
        inv.responseEnded = true;
        const type = req.trailers['lambda-runtime-function-error-type'];
        const body = req.trailers['lambda-runtime-function-error-body'];
        if (type !== undefined || body !== undefined) {
          inv.trailers = {
            errorType: type,
            errorBody: body ? JSON.parse(Buffer.from(body, 'base64').toString('utf8')) : undefined,
          };
        }
      }
      return accepted(res);
    }
    if (req.method === 'POST' && url.pathname === `${API}/init/error`) {
      const body = await readBody(req);
      if (box)
        box.initError = { type: req.headers['lambda-runtime-function-error-type'], ...JSON.parse(body.toString('utf8') || '{}') };
      return accepted(res);
    }
    res.writeHead(404).end();
  }

  function startSandbox() {
    starts++;
    const child = spawn(process.execPath, [entry], {
      cwd: taskRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        LANG: 'en_US.UTF-8',
        TZ: ':UTC',
        AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs24.x',
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(memoryMB),
        AWS_LAMBDA_LOG_GROUP_NAME: `/aws/lambda/${functionName}`,
        AWS_LAMBDA_LOG_STREAM_NAME: `local/${starts}`,
        AWS_REGION: 'us-east-1',
        AWS_DEFAULT_REGION: 'us-east-1',
        LAMBDA_TASK_ROOT: taskRoot,
        LAMBDA_RUNTIME_DIR: dirname(entry),
        _HANDLER: handler,
        AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${port}`,
        ...env,
      },
    });
    const box = { child, exited: false, frozen: false, parked: undefined, initError: undefined };
    box.exit = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        box.exited = true;
        process.off('exit', killOnExit);
        resolve({ code, signal });
        if (sandbox === box) sandbox = undefined;
        if (current?.box === box)
          finish(current, { exit: { code, signal }, initError: box.initError, timedOut: current.timedOut });
      });
    });
    const killOnExit = () => child.kill('SIGKILL');
    process.on('exit', killOnExit);
    for (const [name, stream] of [
      ['stdout', child.stdout],
      ['stderr', child.stderr],
    ]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (text) => {
        const lines = (rest + text).split('\n');
        rest = lines.pop();
        for (const line of lines) {
          logs.push({ stream: name, line });
          onLog?.(name, line);
        }
      });
    }
    sandbox = box;
    return box;
  }

  function handOver(box, inv) {
    const res = box.parked;
    box.parked = undefined;
    inv.handedOver = true;
    if (box.frozen) {
      box.frozen = false;
      box.child.kill('SIGCONT');
    }
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Lambda-Runtime-Aws-Request-Id': inv.id,
      'Lambda-Runtime-Deadline-Ms': String(inv.deadline),
      'Lambda-Runtime-Invoked-Function-Arn': `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
      'Lambda-Runtime-Trace-Id': `Root=1-00000000-${String(inv.seq).padStart(24, '0')};Sampled=0`,
    });
    res.end(inv.payload);
  }

  function finish(inv, { exit, initError, timedOut = false }) {
    if (inv.done) return;
    inv.done = true;
    clearTimeout(inv.killTimer);
    if (current === inv) current = undefined;
    const raw = Buffer.concat(inv.chunks);
    const contentType = inv.contentType ?? '';
    const { prelude, body } = parseHttpIntegrationResponse(contentType, raw);
    inv.result.resolve({
      requestId: inv.id,
      coldStart: inv.coldStart,
      contentType,
      responseMode: inv.responseMode,
      statusCode: prelude?.statusCode,
      headers: prelude?.headers ?? {},
      raw,
      body: body.toString('utf8'),
      trailers: inv.trailers,
      error: inv.error,
      initError,
      exit,
      timedOut,
      // The response ended without error trailers and the runtime asked for the next event
      // before the deadline: the invocation is over, nothing of it left running.
      streamEndedBeforeReturn: Boolean(inv.responseEnded && !inv.trailers && !exit && !timedOut),
    });
  }

  async function invokeOnce(event, { requestId, timeoutMs = 60_000, killAfterMs, onChunk } = {}) {
    const inv = {
      seq: ++seq,
      id: requestId ?? `local-request-${seq}`,
      payload: JSON.stringify(event),
      // Lambda hands over the deadline as an absolute time: getRemainingTimeInMillis() is
      // this minus the clock, and nothing clamps it at 0.
      deadline: Date.now() + timeoutMs,
      chunks: [],
      onChunk,
      result: deferred(),
      handedOver: false,
      done: false,
      timedOut: false,
    };
    inv.coldStart = !sandbox || sandbox.exited;
    const box = inv.coldStart ? startSandbox() : sandbox;
    inv.box = box;
    current = inv;
    // Lambda ends an invocation that outlives its timeout by killing the sandbox.
    inv.killTimer = setTimeout(
      () => {
        inv.timedOut = true;
        box.child.kill('SIGCONT');
        box.child.kill('SIGKILL');
      },
      killAfterMs ?? Math.max(timeoutMs, 0),
    );
    if (box.parked) handOver(box, inv);
    return inv.result.promise;
  }

  return {
    /** Invokes the function once; invocations queue, one at a time, as in one sandbox. */
    invoke(event, options) {
      const run = queue.then(() => invokeOnce(event, options));
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
    /** Processes started so far (each a cold start). */
    get starts() {
      return starts;
    },
    /** The live sandbox process's pid, if any. */
    get pid() {
      return sandbox && !sandbox.exited ? sandbox.child.pid : undefined;
    },
    /** Every line the function's processes wrote, in order. */
    logs: () => logs.slice(),
    async close() {
      const box = sandbox;
      if (box && !box.exited) {
        box.child.kill('SIGCONT');
        box.child.kill('SIGKILL');
        await box.exit;
      }
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
