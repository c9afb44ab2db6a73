import { randomUUID } from "node:crypto";
import { ConfigError, openDiscovery, parseTarget } from "@weft/core";
import { type EtcdServer, startEtcd } from "@weft/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEtcdRegistry, etcdScheme } from "../src/index.ts";

let etcd: EtcdServer;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(() => etcd?.stop());

describe("etcdScheme", () => {
  it("opens the etcd registry the target names, with its prefix", async () => {
    const prefix = `/weft-test/${randomUUID()}`;
    const writer = createEtcdRegistry({ endpoints: [etcd.endpoint], prefix });
    const reg = await writer.register({ services: ["scheme.v1.S"], addresses: { weft: "10.0.0.1:4000" } });
    const host = new URL(etcd.endpoint).host;
    // a second endpoint that nobody listens on: the client fails over to the live one
    const url = `etcd://${host},127.0.0.1:1/scheme.v1.S?prefix=${encodeURIComponent(prefix)}`;
    const opened = openDiscovery(parseTarget(url), { etcd: etcdScheme });
    try {
      expect(await opened.discovery.list("scheme.v1.S")).toEqual([reg.instance]);
      expect(await opened.discovery.services?.()).toEqual(["scheme.v1.S"]);
    } finally {
      await opened.close();
      await writer.close();
    }
  });

  it("rejects a target without host:port endpoints with a ConfigError", () => {
    for (const url of ["etcd:///svc", "etcd://h/svc", "etcd://h:1,,h:2/svc"]) {
      expect(() => etcdScheme(parseTarget(url))).toThrow(ConfigError);
    }
  });
});
