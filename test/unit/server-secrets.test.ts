// src/server.ts loads Powertools' SSM provider (through src/secrets.ts) only when
// UPLOAD_SESSION_SECRET_PARAM names a parameter: a server without one never evaluates it nor
// the SSM client (bench/README.md, "The SSM client, loaded when there is a parameter"). The
// reads themselves run against a stand-in SSM in test/integration/secrets.test.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';

const ssm = vi.hoisted(() => ({ loaded: 0, reads: [] as string[] }));
vi.mock('@aws-lambda-powertools/parameters/ssm', () => {
  ssm.loaded++;
  return {
    SSMProvider: class {
      get(name: string): Promise<string> {
        ssm.reads.push(name);
        return Promise.resolve('s'.repeat(48));
      }
    },
  };
});

const { startServer } = await import('../../src/server.ts');
const { loadConfig } = await import('../../src/config.ts');
const { createLogger } = await import('../../src/logger.ts');

const env = {
  UPLOAD_BUCKET: 'bucket-name',
  S3_ENDPOINT: 'http://127.0.0.1:9',
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'silent',
};
const logger = createLogger('silent', {}, () => {});
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

describe('the session secret of the Node server', () => {
  it('loads no SSM provider without a parameter, given a secret or none', async () => {
    for (const extra of [{}, { UPLOAD_SESSION_SECRET: 'x'.repeat(32) }]) {
      const server = await startServer(loadConfig({ ...env, ...extra }), {
        logger,
        s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
      });
      closers.push(() => server.close());
    }
    expect(ssm.loaded).toBe(0);
  });

  it('loads it, and reads the parameter, when UPLOAD_SESSION_SECRET_PARAM names one', async () => {
    const server = await startServer(loadConfig({ ...env, UPLOAD_SESSION_SECRET_PARAM: '/app/session-secret' }), {
      logger,
      s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
    });
    closers.push(() => server.close());
    expect(ssm.loaded).toBe(1);
    expect(ssm.reads).toEqual(['/app/session-secret']);
  });
});
