import type { Registration, Registry } from "./registry.ts";

/**
 * Test hooks a backend may offer, reached through `@weft/core/internal` (no semver promise): how many
 * watches a registry still holds, and abandoning a registration as a crashed owner would.
 */
export const probe = Symbol.for("weft.discovery.probe");

export interface RegistryProbe {
  /** Watches started and not yet ended. */
  activeWatches(): number;
}
export interface RegistrationProbe {
  /** Stops keeping the record alive without removing it: it expires after its TTL. */
  abandon(): void;
}

/** The number of watches `registry` holds, or `undefined` when the backend does not say. */
export function activeWatches(registry: Registry): number | undefined {
  return (registry as Partial<Record<typeof probe, RegistryProbe>>)[probe]?.activeWatches();
}

/**
 * Stops keeping `registration` alive as a crashed process would (no deregistration): the record
 * expires after its TTL. Returns false when the backend cannot simulate it.
 */
export function abandonRegistration(registration: Registration): boolean {
  const p = (registration as Partial<Record<typeof probe, RegistrationProbe>>)[probe];
  p?.abandon();
  return p !== undefined;
}
