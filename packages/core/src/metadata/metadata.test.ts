import { describe, expect, it } from "vitest";
import { Metadata } from "./metadata.ts";

describe("Metadata", () => {
  it("stores keys lower-case and looks them up case-insensitively", () => {
    const md = new Metadata();
    md.set("X-Request-Id", "r-1");
    expect(md.get("x-request-id")).toBe("r-1");
    expect(md.get("X-REQUEST-ID")).toBe("r-1");
    expect(md.has("x-Request-id")).toBe(true);
    expect([...md.keys()]).toEqual(["x-request-id"]);
    md.set("x-request-id", "r-2");
    expect(md.size).toBe(1);
    expect(md.get("X-Request-Id")).toBe("r-2");
    expect(md.delete("X-REQUEST-ID")).toBe(true);
    expect(md.delete("x-request-id")).toBe(false);
    expect(md.size).toBe(0);
    expect(md.get("missing")).toBeUndefined();
  });

  it("rejects empty keys and the reserved ':' keys", () => {
    const md = new Metadata();
    expect(() => md.set("", "v")).toThrow(TypeError);
    expect(() => md.set(":path", "/x")).toThrow(/reserved/);
    expect(() => new Metadata({ ":timeout": "1" })).toThrow(TypeError);
    expect(() => new Metadata([[":path", "/x"]])).toThrow(TypeError);
  });

  it("lets the protocol layer set reserved keys with setRaw, verbatim", () => {
    const md = new Metadata().setRaw(":path", "/svc/M");
    expect(md.get(":path")).toBe("/svc/M");
    expect(md.size).toBe(1);
  });

  it("keeps values as strings, coercing what is not one", () => {
    const md = new Metadata();
    md.set("n", 5 as unknown as string);
    expect(md.get("n")).toBe("5");
    md.set("empty", "");
    expect(md.get("empty")).toBe("");
    expect(md.has("empty")).toBe(true);
  });

  it("is built from a record, an iterable of pairs, or another Metadata", () => {
    expect(new Metadata({ A: "1", b: "2" }).toJSON()).toEqual({ a: "1", b: "2" });
    expect(
      new Metadata([
        ["A", "1"],
        ["a", "2"],
      ]).toJSON(),
    ).toEqual({ a: "2" });
    expect(new Metadata(new Map([["K", "v"]])).toJSON()).toEqual({ k: "v" });
    const original = new Metadata({ a: "1" }).setRaw(":path", "/x");
    const copy = new Metadata(original);
    expect(copy.toJSON()).toEqual({ a: "1", ":path": "/x" });
    copy.set("a", "changed");
    expect(original.get("a")).toBe("1");
    expect(new Metadata().size).toBe(0);
  });

  it("iterates in insertion order", () => {
    const md = new Metadata();
    md.set("z", "1").set("a", "2").set("m", "3");
    expect([...md]).toEqual([
      ["z", "1"],
      ["a", "2"],
      ["m", "3"],
    ]);
    expect([...md.entries()]).toEqual([...md]);
  });

  it("merges another Metadata, replacing existing keys", () => {
    const a = new Metadata({ x: "1", y: "1" });
    const b = new Metadata({ y: "2", z: "2" });
    expect(a.merge(b)).toBe(a);
    expect(a.toJSON()).toEqual({ x: "1", y: "2", z: "2" });
    expect(b.toJSON()).toEqual({ y: "2", z: "2" });
    expect(a.merge(undefined).size).toBe(3);
  });

  it("serialises to a plain object", () => {
    const md = new Metadata({ "Trace-Id": "t" });
    expect(JSON.stringify({ md })).toBe('{"md":{"trace-id":"t"}}');
  });

  it("carries binary values base64-encoded under -bin keys, as gRPC does", () => {
    const bytes = new Uint8Array([0, 255, 16]);
    const md = new Metadata({ "trace-bin": Buffer.from(bytes).toString("base64") });
    expect([...Buffer.from(md.get("trace-bin")!, "base64")]).toEqual([0, 255, 16]);
  });
});
