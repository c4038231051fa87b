/**
 * The app's metrics port, as CloudWatch Embedded Metric Format (one EMF line per request on
 * Lambda). Upload requests give the upload metrics (a line only when there is something to say).
 */
import type { MetricsRecorder } from '../metrics.ts';
import type { AppMetrics, RequestRecord } from './app.ts';

const LIMIT_CODES = new Set(['FILE_TOO_LARGE', 'TOO_MANY_FILES', 'TOO_MANY_FIELDS', 'FIELD_TOO_LARGE', 'PAYLOAD_TOO_LARGE']);

export function createEmfMetrics(recorder: MetricsRecorder): AppMetrics {
  return {
    record(r: RequestRecord) {
      if (r.route === 'upload') recordUpload(recorder, r);
      recorder.flush();
    },
  };
}

function recordUpload(metrics: MetricsRecorder, r: RequestRecord): void {
  metrics.add('UploadDuration', 'Milliseconds', r.ms);
  if (r.outcome === 'done') {
    metrics.add('UploadedFiles', 'Count', r.filesStored);
    metrics.add('UploadedBytes', 'Bytes', r.bytesStored);
    return;
  }
  metrics.add('FailedRequests', 'Count', 1);
  if (r.filesAborted > 0) metrics.add('AbortedUploads', 'Count', r.filesAborted);
  if (LIMIT_CODES.has(r.outcome)) metrics.add('LimitTrips', 'Count', 1);
  if (r.outcome === 'TIMEOUT') metrics.add('Timeouts', 'Count', 1);
}
