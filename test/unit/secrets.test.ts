// The SSM client and Powertools are loaded by the first read of a parameter, not by the
// import of src/secrets.ts: a server that reads no parameter (UPLOAD_SESSION_SECRET given, or
// no sessions) never evaluates them (~3 MiB of idle RSS, bench/README.md). The reads
// themselves are tested against a stand-in SSM in test/integration/secrets.test.ts.
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => ({ count: 0 }));
vi.mock('@aws-lambda-powertools/parameters/ssm', () => {
  loaded.count++;
  return {
    SSMProvider: class {
      get(name: string): Promise<string> {
        return Promise.resolve(`value of ${name} `.repeat(4));
      }
    },
  };
});

const { createSecretReader, loadSessionSecret } = await import('../../src/secrets.ts');
const { loadConfig } = await import('../../src/config.ts');

describe('the SSM provider', () => {
  it('is not loaded by importing secrets.ts, nor when no parameter is to be read', async () => {
    const config = loadConfig({ UPLOAD_BUCKET: 'bucket-name', UPLOAD_SESSION_SECRET: 'x'.repeat(32) });
    await expect(loadSessionSecret(config)).resolves.toBe('x'.repeat(32));
    const reader = createSecretReader('/app/secret');
    expect(loaded.count).toBe(0);
    await expect(reader.read()).resolves.toContain('value of /app/secret');
    await reader.read();
    expect(loaded.count).toBe(1);
  });
});
