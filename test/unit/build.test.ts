import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildServer, oneByteSource } from '../../scripts/build.mjs';

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

describe('the server bundle', () => {
  // A dependency's doc comment draws boxes; kept, it made V8 hold the 2.4 MB source as UTF-16.
  it('holds no character beyond Latin-1', async () => {
    const bundle = await buildServer(join(dir, 'server.mjs'));
    const text = await readFile(bundle, 'utf8');
    expect(text.length).toBeGreaterThan(100_000);
    expect(BEYOND_LATIN1.exec(text)?.[0]).toBeUndefined();
  });
});
