/**
 * @weft/testing: conformance suites that every implementation of a Weft interface must pass, each a
 * function that defines a Vitest suite for one factory.
 */
export { freePort, killAndRemove } from "./processes.ts";
export { type RegistryConformanceOptions, registryConformance } from "./registry-conformance.ts";
