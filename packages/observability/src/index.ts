export { type AdminEndpoint, type AdminOptions, listenAdmin } from "./admin.ts";
export { accessLog, createLogger, type LoggerOptions, type LogLevel, logLevel } from "./logs.ts";
export {
  type MessagingMetrics,
  type MessagingMetricsOptions,
  messagingMetrics,
} from "./messaging-metrics.ts";
export { type MessagingTracingOptions, messagingTracing } from "./messaging-tracing.ts";
export { DEFAULT_BUCKETS, type Metrics, type MetricsOptions, metrics } from "./metrics.ts";
export { INSTRUMENTATION_NAME, type Tracing, type TracingOptions, tracing } from "./tracing.ts";
