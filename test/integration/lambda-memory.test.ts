/**
 * Lambda memory: the shipped bundle handles the largest event a 6 MB payload allows
 * (events/url-large-4mb.json: 6.0 MB of JSON, 4.3 MiB file) in a fresh process with a peak
 * RSS under 128 MB, the smallest memory size worth configuring. The process is
 * scripts/invoke-local.mjs, the same one `npm run invoke:local` runs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildFunction } from '../../scripts/build.mjs';
import { startS3rver, type TestS3rver } from '../helpers/s3rver.ts';

const LIMIT_KIB = (128 * 1000 * 1000) / 1024; // 128 MB, as Lambda counts memory

let s3: TestS3rver;

beforeAll(async () => {
  s3 = await startS3rver();
  await buildFunction();
});

afterAll(async () => {
  await s3?.close();
});

describe('Lambda memory', () => {
  it.each(['url-large-4mb.json', 'rest-large-4mb.json'])('handles events/%s under 128 MB peak RSS', async (event) => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['scripts/invoke-local.mjs', `events/${event}`, '--rss', '--quiet', '--no-build'],
      {
        env: {
          PATH: process.env['PATH'],
          UPLOAD_BUCKET: s3.bucket,
          S3_ENDPOINT: s3.endpoint,
          AWS_ACCESS_KEY_ID: 'S3RVER',
          AWS_SECRET_ACCESS_KEY: 'S3RVER',
          LOG_LEVEL: 'silent',
        },
        maxBuffer: 1024 * 1024,
      },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { statusCode: number; peakRssKiB: number; body: string };
    console.log(`[lambda-memory] ${event}: status ${result.statusCode}, peak RSS ${(result.peakRssKiB / 1024).toFixed(1)} MiB`);
    expect(result.statusCode).toBe(201);
    expect(JSON.parse(result.body)).toMatchObject({ files: [{ size: Math.floor(4.3 * 1024 * 1024) }] });
    expect(result.peakRssKiB).toBeLessThan(LIMIT_KIB);
  });
});
