import { describe, expect, it } from "vitest";
import { peerOf } from "./peer.ts";

describe("peerOf", () => {
  it("is host:port, with an IPv6 host in brackets", () => {
    expect(peerOf({ remoteAddress: "10.0.0.1", remotePort: 5000 })).toBe("10.0.0.1:5000");
    expect(peerOf({ remoteAddress: "::1", remotePort: 5000 })).toBe("[::1]:5000");
    expect(peerOf({ remoteAddress: "::ffff:127.0.0.1", remotePort: 80 })).toBe("[::ffff:127.0.0.1]:80");
  });

  it("is undefined when the address is not known", () => {
    expect(peerOf(undefined)).toBeUndefined();
    expect(peerOf(null)).toBeUndefined();
    expect(peerOf({})).toBeUndefined();
  });
});
