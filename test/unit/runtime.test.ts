import { describe, expect, it } from 'vitest';

describe('runtime', () => {
  // The function deploys on Lambda's nodejs24.x: the tests must run on the same major,
  // which the `node` devDependency provides to every npm script.
  it('runs on Node 24', () => {
    expect(process.versions.node.split('.')[0]).toBe('24');
  });
});
