import { describe, expect, it } from "vitest";
import { advertisedAddresses, hostForWildcard } from "./registration.ts";

const nics = {
  lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }],
  eth0: [
    { address: "fe80::1", family: "IPv6", internal: false },
    { address: "10.0.0.7", family: "IPv4", internal: false },
  ],
} as never;

describe("advertisedAddresses", () => {
  const bound = new Map([
    ["weft", { host: "0.0.0.0", port: 4000 }],
    ["grpc", { host: "127.0.0.1", port: 50051 }],
  ] as const);

  it("takes the bound address; a wildcard bind is the first non-internal IPv4", () => {
    expect(advertisedAddresses(bound, {}, {}, nics)).toEqual({
      weft: "10.0.0.7:4000",
      grpc: "127.0.0.1:50051",
    });
    expect(hostForWildcard({} as never)).toBe("127.0.0.1");
    expect(advertisedAddresses(new Map([["http", { host: "::1", port: 80 }]]), {}, {})).toEqual({
      http: "[::1]:80",
    });
  });

  it("option first, then WEFT_ADVERTISE_ADDR_<PROTOCOL>, then WEFT_ADVERTISE_ADDR", () => {
    const env = { WEFT_ADVERTISE_ADDR: "pod.example:7000", WEFT_ADVERTISE_ADDR_GRPC: "grpc.example" };
    expect(advertisedAddresses(bound, {}, env, nics)).toEqual({
      weft: "pod.example:7000",
      grpc: "grpc.example:50051",
    });
    expect(advertisedAddresses(bound, { weft: "opt.example" }, env, nics)).toEqual({
      weft: "opt.example:4000",
      grpc: "grpc.example:50051",
    });
    // a generic host:port gives its port to Weft TCP only
    expect(advertisedAddresses(bound, {}, { WEFT_ADVERTISE_ADDR: "h:1" }, nics)).toEqual({
      weft: "h:1",
      grpc: "h:50051",
    });
  });

  it("advertises an unbound protocol only with an explicit host:port", () => {
    expect(advertisedAddresses(new Map(), { http: "gw.example:443" }, {})).toEqual({
      http: "gw.example:443",
    });
    expect(() => advertisedAddresses(new Map(), { http: "gw.example" }, {})).toThrow(/advertise.http/);
  });
});
