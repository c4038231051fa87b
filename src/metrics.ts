/**
 * CloudWatch metrics in Embedded Metric Format: one JSON log line per request that
 * CloudWatch turns into metrics, with no API call and no extra latency
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
 *
 * Dimension sets: `[service, stage]` for stage-wide dashboards and alarms that survive a
 * function rename or a second function, and `[service, stage, functionName]` to tell
 * functions apart. CloudWatch aggregates only within one dimension set, so each set is its
 * own custom metric: two sets cost twice the metrics, and a third (service alone) would mix
 * the stages again, which is what the stage dimension is for.
 */
export type MetricUnit = 'Count' | 'Bytes' | 'Milliseconds';

export interface MetricsRecorder {
  add(name: string, unit: MetricUnit, value: number): void;
  /** Writes the EMF line (once) and resets. */
  flush(): void;
}

export function createMetrics(options: {
  namespace: string;
  service: string;
  /** Deployment stage (config `UPLOAD_STAGE`); without it the sets have `service` only. */
  stage?: string | undefined;
  /** Lambda function name (config `AWS_LAMBDA_FUNCTION_NAME`). */
  functionName?: string | undefined;
  write?: (line: string) => void;
  now?: () => number;
}): MetricsRecorder {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const now = options.now ?? Date.now;
  let values = new Map<string, { unit: MetricUnit; value: number }>();
  const stageSet = options.stage === undefined ? ['service'] : ['service', 'stage'];
  const dimensions = options.functionName === undefined ? [stageSet] : [stageSet, [...stageSet, 'functionName']];
  const dimensionValues = {
    service: options.service,
    ...(options.stage === undefined ? {} : { stage: options.stage }),
    ...(options.functionName === undefined ? {} : { functionName: options.functionName }),
  };
  return {
    add(name, unit, value) {
      const prev = values.get(name);
      values.set(name, { unit, value: (prev?.value ?? 0) + value });
    },
    flush() {
      if (values.size === 0) return;
      const line: Record<string, unknown> = {
        _aws: {
          Timestamp: now(),
          CloudWatchMetrics: [
            {
              Namespace: options.namespace,
              Dimensions: dimensions,
              Metrics: [...values].map(([Name, m]) => ({ Name, Unit: m.unit })),
            },
          ],
        },
        ...dimensionValues,
      };
      for (const [name, m] of values) line[name] = m.value;
      values = new Map();
      write(JSON.stringify(line));
    },
  };
}
