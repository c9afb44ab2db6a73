export { INSTRUMENTATION_NAME, type Tracing, type TracingOptions, tracing } from "./tracing.ts";
