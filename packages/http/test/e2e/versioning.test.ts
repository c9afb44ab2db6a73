import { createServer } from "@weft/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRestHandler, VENDOR_TYPE } from "../../src/index.ts";
import { call, type Gateway, probe, registerOrders, registerOrdersV2, startGateway } from "../fixtures.ts";

const V1_ORDER = { id: "5", customer: "ada", totalCents: "9007199254740993" };
const V2_ORDER = { id: "5", customerId: "c-7", total: { currency: "EUR", amountMinor: "1250" } };

let gw: Gateway;
beforeAll(async () => {
  gw = await startGateway();
});
afterAll(() => gw.close());

describe("the major version in the URL", () => {
  it("serves /v1 and /v2 side by side from orders.v1 and orders.v2", async () => {
    expect(gw.rest.handler.versions).toEqual(["1", "2"]);
    expect((await call(`${gw.url}/v1/orders/5`)).body).toMatchObject(V1_ORDER);
    expect((await call(`${gw.url}/v2/orders/5`)).body).toEqual(V2_ORDER);
    const created = await call(`${gw.url}/v2/orders`, {
      method: "POST",
      json: { id: "9", total: { currency: "USD" } },
    });
    expect(created.body).toEqual({ id: "9", total: { currency: "USD" } });
  });

  it("a versioned URL with a contradicting vendor Accept is 406; a matching one is echoed in Content-Type", async () => {
    const bad = await call(`${gw.url}/v1/orders/5`, { headers: { accept: `${VENDOR_TYPE}; version=2` } });
    expect(bad.status).toBe(406);
    expect(bad.body).toMatchObject({ supportedVersions: ["1"], reason: "UNSUPPORTED_VERSION" });
    const ok = await call(`${gw.url}/v2/orders/5`, { headers: { accept: `${VENDOR_TYPE}; version=2` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe(`${VENDOR_TYPE}; version=2`);
  });
});

describe("content negotiation on unversioned paths", () => {
  it("Accept: application/vnd.weft+json; version=2 selects v2", async () => {
    const r = await call(`${gw.url}/orders/5`, { headers: { accept: `${VENDOR_TYPE}; version=2` } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual(V2_ORDER);
    expect(r.headers.get("content-type")).toBe(`${VENDOR_TYPE}; version=2`);
    expect(r.headers.get("vary")).toContain("Accept");
  });

  it("version=1 selects v1 (also spelled v1, quoted, or among other ranges)", async () => {
    for (const accept of [
      `${VENDOR_TYPE}; version=1`,
      `${VENDOR_TYPE};version="v1"`,
      `text/html, ${VENDOR_TYPE}; version=1; q=0.9, ${VENDOR_TYPE}; version=2; q=0.5`,
    ]) {
      const r = await call(`${gw.url}/orders/5`, { headers: { accept } });
      expect(r.status, accept).toBe(200);
      expect(r.body, accept).toMatchObject(V1_ORDER);
    }
  });

  it("the highest q wins", async () => {
    const accept = `${VENDOR_TYPE}; version=1; q=0.2, ${VENDOR_TYPE}; version=2; q=0.8`;
    expect((await call(`${gw.url}/orders/5`, { headers: { accept } })).body).toEqual(V2_ORDER);
  });

  it("Accept: application/json, or no Accept, gets the default version (the oldest)", async () => {
    for (const headers of [{}, { accept: "application/json" }, { accept: "*/*" }, { accept: VENDOR_TYPE }]) {
      const r = await call(`${gw.url}/orders/5`, { headers });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject(V1_ORDER);
      expect(r.headers.get("content-type")).toBe("application/json");
    }
  });

  it("a path only v2 serves is found by its default (oldest version serving it)", async () => {
    expect((await call(`${gw.url}/customers/c-1`)).body).toEqual({ id: "c-1", name: "Ada" });
  });

  it("an unsupported version is a clear 406 listing the supported ones", async () => {
    const r = await call(`${gw.url}/orders/5`, { headers: { accept: `${VENDOR_TYPE}; version=3` } });
    expect(r.status).toBe(406);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.body).toEqual({
      code: 3,
      status: "INVALID_ARGUMENT",
      reason: "UNSUPPORTED_VERSION",
      message: "API version 3 is not served here; supported: 1, 2",
      details: [{ type: "weft.SupportedVersions", value: { requested: ["3"], supported: ["1", "2"] } }],
      supportedVersions: ["1", "2"],
    });
    const onlyV2 = await call(`${gw.url}/customers/c-1`, {
      headers: { accept: `${VENDOR_TYPE}; version=1` },
    });
    expect(onlyV2.status).toBe(406);
    expect(onlyV2.body).toMatchObject({ supportedVersions: ["2"] });
  });

  it("an unsupported version next to a plain JSON range falls back to the default", async () => {
    const accept = `${VENDOR_TYPE}; version=3, application/json; q=0.1`;
    expect((await call(`${gw.url}/orders/5`, { headers: { accept } })).body).toMatchObject(V1_ORDER);
  });

  it("the method check applies within the chosen version", async () => {
    const r = await call(`${gw.url}/customers/c-1`, {
      method: "DELETE",
      headers: { accept: `${VENDOR_TYPE}; version=2` },
    });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
  });

  it("unversioned aliases can be turned off", async () => {
    const g = await startGateway({ rest: { unversionedAliases: false } });
    try {
      expect((await call(`${g.url}/orders/5`)).status).toBe(404);
      expect((await call(`${g.url}/v2/orders/5`)).status).toBe(200);
    } finally {
      await g.close();
    }
  });
});

describe("defaultVersion", () => {
  it('"latest" serves the newest version to clients that ask for none', async () => {
    const g = await startGateway({ rest: { defaultVersion: "latest" } });
    try {
      expect((await call(`${g.url}/orders/5`)).body).toEqual(V2_ORDER);
      // v1-only paths still answer from v1, the latest version that serves them
      expect((await call(`${g.url}/orders/5/status`)).body).toBe("ORDER_STATE_SHIPPED");
    } finally {
      await g.close();
    }
  });

  it("a pinned version: paths it lacks need an explicit version", async () => {
    const g = await startGateway({ rest: { defaultVersion: "1" } });
    try {
      expect((await call(`${g.url}/orders/5`)).body).toMatchObject(V1_ORDER);
      const r = await call(`${g.url}/customers/c-1`);
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ reason: "ROUTE_NOT_FOUND" });
      expect((r.body as { message: string }).message).toContain("version 2");
      const explicit = await call(`${g.url}/customers/c-1`, {
        headers: { accept: `${VENDOR_TYPE}; version=2` },
      });
      expect(explicit.status).toBe(200);
    } finally {
      await g.close();
    }
  });

  it("must be oldest, latest or a served version (a configuration error)", () => {
    const server = createServer();
    registerOrders(server, probe());
    registerOrdersV2(server);
    expect(() => createRestHandler(server, { defaultVersion: "7" })).toThrow(/defaultVersion.*oldest.*1, 2/);
    expect(createRestHandler(server, { defaultVersion: "v2" }).versions).toEqual(["1", "2"]);
  });
});
