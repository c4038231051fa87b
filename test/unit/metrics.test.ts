import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';

function emit(options: { stage?: string; functionName?: string }): unknown[] {
  const lines: string[] = [];
  const metrics = createMetrics({
    namespace: 'ns',
    service: 'svc',
    now: () => 1_700_000_000_000,
    write: (l) => lines.push(l),
    ...options,
  });
  metrics.add('UploadedBytes', 'Bytes', 10);
  metrics.add('UploadedBytes', 'Bytes', 5);
  metrics.add('UploadedFiles', 'Count', 2);
  metrics.flush();
  metrics.flush(); // nothing new: no second line
  return lines.map((l) => JSON.parse(l) as unknown);
}

describe('EMF metrics line', () => {
  it('carries the stage and the function name as dimensions', () => {
    expect(emit({ stage: 'prod', functionName: 's3-stream-upload-prod-upload' })).toEqual([
      {
        _aws: {
          Timestamp: 1_700_000_000_000,
          CloudWatchMetrics: [
            {
              Namespace: 'ns',
              Dimensions: [
                ['service', 'stage'],
                ['service', 'stage', 'functionName'],
              ],
              Metrics: [
                { Name: 'UploadedBytes', Unit: 'Bytes' },
                { Name: 'UploadedFiles', Unit: 'Count' },
              ],
            },
          ],
        },
        service: 'svc',
        stage: 'prod',
        functionName: 's3-stream-upload-prod-upload',
        UploadedBytes: 15,
        UploadedFiles: 2,
      },
    ]);
  });

  it('names only the dimensions it has a value for', () => {
    const [withStage] = emit({ stage: 'dev' }) as [
      Record<string, unknown> & { _aws: { CloudWatchMetrics: { Dimensions: unknown }[] } },
    ];
    expect(withStage._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service', 'stage']]);
    expect(withStage).not.toHaveProperty('functionName');
    const [bare] = emit({}) as [Record<string, unknown> & { _aws: { CloudWatchMetrics: { Dimensions: unknown }[] } }];
    expect(bare._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service']]);
    expect(bare).not.toHaveProperty('stage');
  });

  it('writes each dimension a set names as a top-level member (EMF rule)', () => {
    for (const line of [...emit({ stage: 'a', functionName: 'f' }), ...emit({ stage: 'a' }), ...emit({})] as Record<
      string,
      unknown
    >[]) {
      const directive = (line._aws as { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] })
        .CloudWatchMetrics[0]!;
      for (const name of directive.Dimensions.flat()) expect(typeof line[name], name).toBe('string');
      for (const { Name } of directive.Metrics) expect(typeof line[Name], Name).toBe('number');
    }
  });
});
