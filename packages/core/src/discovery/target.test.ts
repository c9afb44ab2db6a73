import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors/weft-error.ts";
import { isHostPort, openDiscovery, parseTarget } from "./target.ts";

describe("parseTarget", () => {
  it("reads host:port as a static target", () => {
    expect(parseTarget("127.0.0.1:4000")).toMatchObject({ scheme: "static", endpoint: "127.0.0.1:4000" });
    expect(parseTarget("[::1]:4000")).toMatchObject({ scheme: "static", endpoint: "[::1]:4000" });
    expect(isHostPort("catalog.internal:4000")).toBe(true);
    expect(isHostPort("catalog.internal")).toBe(false);
  });

  it("reads the gRPC-style URIs", () => {
    expect(parseTarget("dns:///catalog.internal:4000")).toMatchObject({
      scheme: "dns",
      authority: "",
      endpoint: "catalog.internal:4000",
    });
    expect(parseTarget("dns://127.0.0.1:5353/catalog.internal:4000")).toMatchObject({
      authority: "127.0.0.1:5353",
    });
    const etcd = parseTarget("ETCD://10.0.0.1:2379,10.0.0.2:2379/catalog.v1.Catalog?prefix=/weft");
    expect(etcd).toMatchObject({ scheme: "etcd", authority: "10.0.0.1:2379,10.0.0.2:2379" });
    expect(etcd.endpoint).toBe("catalog.v1.Catalog");
    expect(etcd.params.get("prefix")).toBe("/weft");
    expect(parseTarget("local:///catalog.v1.Catalog?dir=/tmp/r%20x").params.get("dir")).toBe("/tmp/r x");
    expect(parseTarget("etcd://127.0.0.1:2379").endpoint).toBe("");
  });

  it("rejects what is neither, with a ConfigError naming the option", () => {
    for (const bad of ["", "catalog", "http//x", "dns:catalog:1", "local:///%E0%A4%A"]) {
      const error = (() => {
        try {
          parseTarget(bad);
        } catch (e) {
          return e;
        }
      })();
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).option).toBe("target");
    }
  });
});

describe("openDiscovery", () => {
  it("refuses an unknown scheme and names the known ones", () => {
    expect(() => openDiscovery(parseTarget("zk://1.2.3.4:2181/x"))).toThrow(/local/);
  });

  it("uses a given scheme over the built-in table", async () => {
    const opened = openDiscovery(parseTarget("test://a/b"), {
      test: (t) => ({
        discovery: { list: async () => [], watch: () => [] as never, services: async () => [t.endpoint] },
        close: async () => {},
      }),
    });
    await expect(opened.discovery.services?.()).resolves.toEqual(["b"]);
  });
});
