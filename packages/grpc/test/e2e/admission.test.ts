/**
 * An admission (a load shedder) at the door of the HTTP front ends is told how long each call
 * queued: node:http2 does not show its socket reads, so a call's arrival is when the event loop's
 * turn opened its first call, and calls opened in one turn queue behind each other's work.
 */
import { Code as ConnectCode, createClient as createConnectClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { type CallAdmission, Code, createClient, type Interceptor, Reason, WeftError } from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { Catalog } from "../../../../examples/catalog/src/gen/catalog/v1/catalog_pb.ts";
import { createGrpcTransport } from "../../src/index.ts";
import { CatalogService, type Harness, startCatalog } from "./fixtures.ts";

/** Synchronous work of every call's first step on the server, in ms. */
const WORK_MS = 4;

/** Burns `WORK_MS` of CPU before the handler: what a busy handler does to the calls behind it. */
const busy: Interceptor = (next) => (call) => {
  const until = performance.now() + WORK_MS;
  while (performance.now() < until) {
    // the call's synchronous work
  }
  return next(call);
};

/**
 * Records how long each call had queued when the door asked and refuses those past `limitMs`;
 * `onFirst` runs (in a microtask) when the door next asks.
 */
function recorder(limitMs = Number.POSITIVE_INFINITY) {
  const rec = {
    queued: [] as number[],
    open: 0,
    onFirst: undefined as (() => void) | undefined,
    admission: undefined as unknown as CallAdmission,
  };
  rec.admission = {
    admit(_path, _headers, arrivedAt) {
      const delay = performance.now() - arrivedAt;
      rec.queued.push(delay);
      const first = rec.onFirst;
      rec.onFirst = undefined;
      if (first !== undefined) queueMicrotask(first);
      if (delay > limitMs) {
        return new WeftError(Code.RESOURCE_EXHAUSTED, "shed", { reason: Reason.OVERLOADED });
      }
      rec.open++;
      return undefined;
    },
    finished: () => {
      rec.open--;
    },
  };
  return rec;
}

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("admission on the HTTP front ends", () => {
  it("Connect: calls opened in one turn queue behind each other's work, and one past the limit is shed OVERLOADED", async () => {
    const rec = recorder(WORK_MS / 2);
    h = await startCatalog({ admission: rec.admission, interceptors: [busy] });
    const client = createConnectClient(
      Catalog,
      createConnectTransport({ baseUrl: `http://${h.address}`, httpVersion: "2" }),
    );
    await client.lookup({ sku: "warm-up" }); // the connection is up: the next calls leave together
    rec.queued.length = 0;
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, (_, i) => client.lookup({ sku: `S-${i}` })),
    );
    expect(rec.queued).toHaveLength(6);
    expect(Math.min(...rec.queued)).toBeGreaterThanOrEqual(0); // never before its turn began
    expect(Math.max(...rec.queued)).toBeGreaterThanOrEqual(WORK_MS); // one waited for another's work
    const shed = results.filter((r) => r.status === "rejected");
    expect(shed.length).toBe(rec.queued.filter((d) => d > WORK_MS / 2).length);
    expect(shed.length).toBeGreaterThan(0);
    for (const r of shed) {
      const e = (r as PromiseRejectedResult).reason as { code: unknown; rawMessage: string };
      expect(e.code).toBe(ConnectCode.ResourceExhausted);
    }
    expect(rec.open).toBe(0);
  });

  it("gRPC: a call opened alone in its turn has not queued", async () => {
    const rec = recorder();
    h = await startCatalog({ admission: rec.admission, interceptors: [busy] });
    const transport = createGrpcTransport({ address: h.address });
    try {
      const client = createClient(CatalogService, transport);
      for (let i = 0; i < 3; i++) await client.lookup({ sku: `S-${i}` });
      expect(rec.queued).toHaveLength(3);
      for (const d of rec.queued) {
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThan(WORK_MS);
      }
    } finally {
      await transport.close();
    }
  });
});
