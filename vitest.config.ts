import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Starts Ceph radosgw for the conformance suites (installs it when missing); see
    // scripts/ceph.sh. S3_TEST_RADOSGW=0 skips those suites locally.
    globalSetup: ['test/helpers/ceph-global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 240_000,
    // Integration suites start servers and child processes: keep them from starving each
    // other on a 2-core machine.
    maxWorkers: 2,
  },
});
