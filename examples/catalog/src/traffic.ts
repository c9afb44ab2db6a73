import { createTcpTransport, failover, p2cEwma, type Schemes } from "@weft/core";
import { createCatalogClient } from "./gen/catalog/v1/catalog_weft.ts";

/** What a batch of calls through the target did: calls answered per instance, and failures. */
export interface Tally {
  perInstance: Map<string, number>;
  failed: number;
}

/** `id=count` for every instance, in id order. */
export function formatTally(tally: Tally): string {
  return [...tally.perInstance]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, n]) => `${id}=${n}`)
    .join(" ");
}

/**
 * Calls through the registry: a Weft TCP transport following `target` (every instance that
 * advertises a Weft address), P2C-EWMA picking an instance per call, and failover resending a failed
 * idempotent call (`Lookup` is `NO_SIDE_EFFECTS` in the .proto) to another instance.
 */
export function openTraffic(target: string, schemes: Schemes) {
  const transport = createTcpTransport({
    target,
    schemes,
    balancer: p2cEwma(),
    methods: { Lookup: { mode: failover({ retries: 2 }) } },
  });
  const catalog = createCatalogClient(transport, { timeoutMs: 2000 });

  /**
   * Runs `total` lookups, `inFlight` at a time, counting who answered each (the `x-instance`
   * response header); `after(done)` runs once after every completed call.
   */
  const run = async (total: number, inFlight: number, after?: (done: number) => void): Promise<Tally> => {
    const tally: Tally = { perInstance: new Map(), failed: 0 };
    let started = 0;
    let done = 0;
    const worker = async () => {
      while (started < total) {
        started++;
        let servedBy = "?";
        try {
          await catalog.lookup(
            { sku: "A-100" },
            { onHeader: (h) => (servedBy = h.get("x-instance") ?? "?") },
          );
          tally.perInstance.set(servedBy, (tally.perInstance.get(servedBy) ?? 0) + 1);
        } catch {
          tally.failed++;
        }
        after?.(++done);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    return tally;
  };
  return { run, close: () => transport.close() };
}
