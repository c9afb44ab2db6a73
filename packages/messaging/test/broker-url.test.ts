/**
 * Broker URLs: parsing, the scheme table (built-in `memory` and `direct`, given schemes, `a+b`
 * lookup), bad URLs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@weft/core";
import { describe, expect, it } from "vitest";
import {
  type BrokerScheme,
  type DirectBroker,
  memoryBroker,
  newMessageId,
  openBroker,
  parseBrokerUrl,
  redactBrokerUrl,
} from "../src/index.ts";
import { checkParams, integerParam, integerParams, textParams } from "../src/internal.ts";

describe("parseBrokerUrl", () => {
  it("reads scheme, authority, path and parameters; `scheme:` alone is `scheme://`", () => {
    expect(parseBrokerUrl("memory:")).toMatchObject({
      text: "memory:",
      scheme: "memory",
      authority: "",
      endpoint: "",
    });
    const u = parseBrokerUrl("AMQP://guest:guest@127.0.0.1:5672/vhost?exchange=weft");
    expect(u).toMatchObject({ scheme: "amqp", authority: "guest:guest@127.0.0.1:5672", endpoint: "vhost" });
    expect(u.params.get("exchange")).toBe("weft");
    expect(parseBrokerUrl("direct+local:///?dir=/tmp/r%20x").params.get("dir")).toBe("/tmp/r x");
  });

  it("throws ConfigError (option broker) for host:port, garbage and non-strings, without credentials", () => {
    for (const bad of ["127.0.0.1:4222", "", "nats//x", "://x", 42]) {
      expect(() => parseBrokerUrl(bad as string)).toThrow(ConfigError);
      expect(() => parseBrokerUrl(bad as string)).toThrow(/"broker"/);
    }
    expect(() => parseBrokerUrl("amqp://u:secret@h:1/%zz")).toThrow(/amqp:\/\/h:1/);
    expect(() => parseBrokerUrl("amqp://u:secret@h:1/%zz")).not.toThrow(/secret/);
  });

  it("redacts user and password", () => {
    expect(redactBrokerUrl("redis://u:p@h:6379/0")).toBe("redis://h:6379/0");
    expect(redactBrokerUrl("memory:")).toBe("memory:");
  });
});

describe("openBroker", () => {
  it("opens memory: with nothing given, a new broker each time", async () => {
    const a = await openBroker("memory:");
    const b = await openBroker("memory://");
    expect(a.name).toBe("memory");
    expect(a).not.toBe(b);
    await Promise.all([a.close(), b.close()]);
    await expect(openBroker("memory://host")).rejects.toThrow(/memory: \(nothing after the scheme\)/);
    await expect(openBroker("memory:///?x=1")).rejects.toThrow(ConfigError);
  });

  it("uses the given schemes over the built-in ones; `a+b` falls back to `a`", async () => {
    const seen: string[] = [];
    const test: BrokerScheme = async (url) => {
      seen.push(`${url.scheme} ${url.authority} ${url.params.get("q")}`);
      return memoryBroker();
    };
    await (await openBroker("test://h:1/?q=1", { test })).close();
    await (await openBroker("test+sub:///?q=2", { test })).close();
    await (await openBroker("memory:", { memory: test })).close();
    expect(seen).toEqual(["test h:1 1", "test+sub  2", "memory  null"]);
  });

  it("rejects an unknown scheme naming the known ones, without credentials", async () => {
    const attempt = openBroker("kafka://u:pw@k:9092", {});
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(openBroker("kafka://u:pw@k:9092")).rejects.toThrow(
      /one of memory, direct .*kafka:\/\/k:9092/,
    );
    await expect(openBroker("kafka://u:pw@k:9092")).rejects.not.toThrow(/pw/);
  });
});

describe("URL parameters of a scheme", () => {
  it("integerParam reads a positive integer or throws naming the parameter; checkParams refuses unknown ones", () => {
    const url = parseBrokerUrl("x://h/?n=5&bad=0&word=a");
    expect(integerParam(url, "n")).toBe(5);
    expect(integerParam(url, "absent")).toBeUndefined();
    expect(() => integerParam(url, "bad")).toThrow(/parameter bad/);
    expect(() => integerParam(url, "word")).toThrow(/parameter word/);
    expect(() => checkParams(url, ["n", "bad"])).toThrow(/word in x:\/\/h/);
    expect(() => checkParams(parseBrokerUrl("x://h/?n=1"), ["n"])).not.toThrow();
    expect(integerParams(url, ["n", "absent"])).toEqual({ n: 5 });
    expect(textParams(url, ["word", "absent"])).toEqual({ word: "a" });
  });
});

describe("direct: URLs (built in)", () => {
  it("direct+local: brokers in one registry directory reach each other; direct: takes static peers", async () => {
    const dir = mkdtempSync(join(tmpdir(), "weft-direct-url-"));
    const url = `direct+local:///?dir=${encodeURIComponent(dir)}&host=127.0.0.1&announceTimeoutMs=2000`;
    const a = await openBroker(url);
    const b = await openBroker(url);
    try {
      expect(a.name).toBe("direct");
      const got: string[] = [];
      await a.subscribe(
        { destination: "url.test", group: "g", maxInFlight: 1, ackWaitMs: 1000, partitions: undefined },
        (d) => void d.ack().then(() => got.push(d.envelope.id)),
      );
      await expect.poll(() => (b as DirectBroker).subscribersOf("url.test").length).toBe(1);
      const id = newMessageId();
      await b.publish({
        id,
        kind: "event",
        destination: "url.test",
        publishedAt: 1,
        contentType: "x",
        headers: {},
        body: new Uint8Array(),
      });
      await expect.poll(() => got).toEqual([id]);
      const c = await openBroker(`direct:///?peers=${(a as DirectBroker).address}&host=127.0.0.1`);
      expect((c as DirectBroker).address).toMatch(/:\d+$/);
      await c.close();
    } finally {
      await Promise.all([a.close(), b.close()]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses an authority, a path, another registry, a bad peer or parameter with ConfigError", async () => {
    for (const bad of [
      "direct://h:1",
      "direct:///x",
      "direct+etcd:///?dir=x",
      "direct:///?peers=nohost",
      "direct:///?dir=/tmp",
      "direct+local:///?peers=a:1",
      "direct:///?port=x",
    ])
      await expect(openBroker(bad), bad).rejects.toThrow(ConfigError);
  });
});
