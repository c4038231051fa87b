/** S3's multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html), defined once. */
const MiB = 1024 * 1024;

/** Smallest part but the last. */
export const S3_MIN_PART_BYTES = 5 * MiB;
/** Largest part. */
export const S3_MAX_PART_BYTES = 5 * 1024 * MiB;
/** Most parts of one multipart upload. */
export const S3_MAX_PARTS = 10_000;
