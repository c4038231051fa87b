/**
 * A strict parser of the Prometheus text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format): every
 * line is a `# HELP`, a `# TYPE`, a sample or empty, names and labels are valid, values are floats,
 * each sample belongs to a family declared by `# TYPE` before it. Throws on anything else.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
  /** The value of the sample with exactly these labels (undefined when absent). */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_PAIR = new RegExp(`^(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(?:,|$)`);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** Sample names a family of each type may have, beyond its own name. */
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

export function parsePrometheusText(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}: ${JSON.stringify(line)}`;
      // The format ignores empty lines (prom-client puts one between families).
      if (line === '') return;
      if (line.startsWith('#')) {
        const m = new RegExp(`^# (HELP|TYPE) (${NAME})(?: (.*))?$`).exec(line);
        if (!m) throw new Error(`bad comment, ${where}`);
        if (m[1] === 'TYPE') {
          if (!TYPES.has(m[3] ?? '')) throw new Error(`bad type, ${where}`);
          if (types.has(m[2]!)) throw new Error(`type given twice, ${where}`);
          types.set(m[2]!, m[3]!);
        }
        return;
      }
      const m = SAMPLE.exec(line);
      if (!m) throw new Error(`bad sample, ${where}`);
      const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
      const labels: Record<string, string> = {};
      let rest = labelText ?? '';
      while (rest !== '') {
        const pair = LABEL_PAIR.exec(rest);
        if (!pair) throw new Error(`bad labels, ${where}`);
        if (pair[1]! in labels) throw new Error(`label given twice, ${where}`);
        labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(pair[0].length);
      }
      // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case
      // (prom-client writes an empty summary's mean as "Nan").
      const special = valueText.toLowerCase();
      const value =
        special === '+inf' || special === 'inf'
          ? Infinity
          : special === '-inf'
            ? -Infinity
            : special === 'nan'
              ? NaN
              : Number(valueText);
      if (special !== 'nan' && Number.isNaN(value)) throw new Error(`bad value, ${where}`);
      const family = [...types].find(([f, type]) => name === f || (SUFFIXES[type] ?? []).some((suffix) => name === f + suffix));
      if (!family) throw new Error(`sample without a # TYPE before it, ${where}`);
      samples.push({ name, labels, value });
    });
  return {
    types,
    samples,
    value(name, labels = {}) {
      const want = JSON.stringify(Object.entries(labels).sort());
      return samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
    },
  };
}
