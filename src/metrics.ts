/**
 * CloudWatch metrics in Embedded Metric Format: one JSON log line per request that
 * CloudWatch turns into metrics, with no API call and no extra latency
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
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
  write?: (line: string) => void;
  now?: () => number;
}): MetricsRecorder {
  const write = options.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const now = options.now ?? Date.now;
  let values = new Map<string, { unit: MetricUnit; value: number }>();
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
              Dimensions: [['service']],
              Metrics: [...values].map(([Name, m]) => ({ Name, Unit: m.unit })),
            },
          ],
        },
        service: options.service,
      };
      for (const [name, m] of values) line[name] = m.value;
      values = new Map();
      write(JSON.stringify(line));
    },
  };
}
