/**
 * Bad requests that must each answer one stable error code and store nothing, shared by the
 * suites that send them to different S3 servers (s3rver, radosgw).
 */
import { buildMultipart, CONTENT_TYPE } from './multipart.ts';

/** A file part of `size` bytes of value `i`, named f<i>. */
export const file = (size: number, i = 0) => ({ name: `f${i}`, filename: `f${i}.bin`, data: Buffer.alloc(size, i) });

/** [label, request headers, body, status, code] */
export const BAD_REQUESTS = [
  ['not multipart', { 'content-type': 'application/json' }, Buffer.from('{}'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['no boundary', { 'content-type': 'multipart/form-data' }, Buffer.from('x'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['no content type', {}, Buffer.from('x'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['truncated body', { 'content-type': CONTENT_TYPE }, buildMultipart([file(1000)]).subarray(0, 600), 400, 'MALFORMED_MULTIPART'],
  ['no file', { 'content-type': CONTENT_TYPE }, buildMultipart([{ name: 'a', value: 'b' }]), 400, 'NO_FILES'],
  [
    'too many files',
    { 'content-type': CONTENT_TYPE },
    buildMultipart([0, 1, 2, 3, 4].map((i) => file(10, i))),
    413,
    'TOO_MANY_FILES',
  ],
  [
    'too many fields',
    { 'content-type': CONTENT_TYPE },
    buildMultipart([...[0, 1, 2, 3, 4].map((i) => ({ name: `k${i}`, value: 'v' })), file(1)]),
    413,
    'TOO_MANY_FIELDS',
  ],
] as const;
