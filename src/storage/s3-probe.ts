/**
 * The readiness probe of the S3 store: one HeadBucket, the cheapest request that proves the
 * endpoint answers and the bucket exists. A 403 counts as reachable: S3 answered, and a role
 * that may write objects need not be allowed s3:ListBucket (which HeadBucket needs), as the
 * Lambda function's role is not.
 */
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { sendS3 } from './s3-call.ts';
import { storageError } from './s3-errors.ts';

export function createS3Probe(client: S3Client, bucket: string): (signal: AbortSignal) => Promise<void> {
  return async (signal) => {
    try {
      await sendS3(client, new HeadBucketCommand({ Bucket: bucket }), { signal }, (c, o) => client.send(c, o));
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode === 403) return;
      throw storageError(err, 'answer HeadBucket');
    }
  };
}
