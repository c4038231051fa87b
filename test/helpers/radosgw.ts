// Client side of the radosgw (Ceph's S3 implementation) started by test/helpers/ceph-global-setup.ts
// through scripts/ceph.sh. Suites read the endpoint with `inject('radosgwEndpoint')`; it is '' when
// radosgw is not available, and those suites should `describe.skipIf(!endpoint)`.
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/** The S3 user scripts/ceph.sh creates (keep in sync with AK/SK there). */
export const RADOSGW_ACCESS_KEY = 'TESTACCESSKEY0000000';
export const RADOSGW_SECRET_KEY = 'testsecretkey0000000000000000000000000000';

declare module 'vitest' {
  export interface ProvidedContext {
    /** e.g. `http://127.0.0.1:7480`, or '' when radosgw is unavailable (suites skip). */
    radosgwEndpoint: string;
  }
}

export function radosgwClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    // radosgw serves buckets by path (`rgw dns name = localhost` would be needed for vhost style).
    forcePathStyle: true,
    // Any region signs fine; radosgw's default zonegroup accepts it.
    region: 'us-east-1',
    credentials: { accessKeyId: RADOSGW_ACCESS_KEY, secretAccessKey: RADOSGW_SECRET_KEY },
    // The SDK's default (WHEN_SUPPORTED) sends streaming bodies as aws-chunked with trailing
    // checksums, which radosgw (16.x) rejects with 411 MissingContentLength. It does not verify
    // x-amz-checksum-* values anyway.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A fresh, valid bucket name: lowercase, 3-63 chars. */
export function uniqueBucketName(prefix = 'test'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`.toLowerCase().slice(0, 63);
}

/** Creates the bucket (an existing bucket of ours is fine) and returns its name. */
export async function createTestBucket(client: S3Client, name: string): Promise<string> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } catch (err) {
    if (!(err instanceof Error && err.name === 'BucketAlreadyOwnedByYou')) throw err;
  }
  return name;
}
