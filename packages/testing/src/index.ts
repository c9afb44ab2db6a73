/**
 * @weft/testing: conformance suites that every implementation of a Weft interface must pass, each a
 * function that defines a Vitest suite for one factory, and launchers of the real servers tests run
 * against (`startEtcd()`, `startPostgres()`).
 */
export { type AsyncPatternsOptions, asyncPatternsConformance } from "./async-patterns.ts";
export { type BrokerConformanceOptions, brokerConformance } from "./broker-conformance.ts";
export { brokerView } from "./broker-view.ts";
export { type DeadLetterConformanceOptions, deadLetterConformance } from "./dead-letter-conformance.ts";
export { testEnvelope } from "./envelopes.ts";
export { type EtcdServer, startEtcd } from "./etcd-server.ts";
export { type PostgresServer, startPostgres } from "./postgres-server.ts";
export { freePort, killAndRemove, killed } from "./processes.ts";
export { type RegistryConformanceOptions, registryConformance } from "./registry-conformance.ts";
export { until } from "./until.ts";
