/** Reading metrics back in tests: a prom-client series' value, an OpenTelemetry reader collected on demand. */
import { MetricReader } from "@opentelemetry/sdk-metrics";
import type { Registry } from "prom-client";

/**
 * The value of the series of `name` with `labels` (0 when absent); for a histogram, of its
 * `sample` (`_count`, `_sum`, or `_bucket` with an `le` label).
 */
export async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string | number>,
  sample?: "_count" | "_sum" | "_bucket",
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find(
    (v) =>
      (sample === undefined || (v as { metricName?: string }).metricName === `${name}${sample}`) &&
      Object.entries(labels).every(
        ([k, l]) => String((v.labels as Record<string, unknown>)[k]) === String(l),
      ),
  );
  return found?.value ?? 0;
}

/** A reader collected on demand. */
export class ManualReader extends MetricReader {
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
