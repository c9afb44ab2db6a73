import { describe, expect, it, vi } from "vitest";
import { peerIdentityOf, peerOf, splitAltNames } from "./peer.ts";

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

describe("splitAltNames", () => {
  it("splits Node's subjectaltname at the commas between entries, unquoting escaped values", () => {
    expect(splitAltNames("DNS:a.test, URI:spiffe://acme/billing, IP Address:10.0.0.7")).toEqual([
      "DNS:a.test",
      "URI:spiffe://acme/billing",
      "IP Address:10.0.0.7",
    ]);
    // Node quotes a value with characters it escapes, as a JSON string
    expect(splitAltNames('URI:"https://x.test/a\\u002cb", DNS:"a, b", email:ops@acme.io')).toEqual([
      "URI:https://x.test/a,b",
      "DNS:a, b",
      "email:ops@acme.io",
    ]);
    expect(splitAltNames(undefined)).toEqual([]);
    expect(splitAltNames("")).toEqual([]);
  });
});

describe("peerIdentityOf", () => {
  const cert = {
    subject: { O: "Acme", OU: ["a", "b"], CN: "billing" },
    issuer: { CN: "acme-ca" },
    subjectaltname: "URI:spiffe://acme/billing",
    fingerprint256: "AB:CD",
    raw: Buffer.from([1, 2, 3]),
  };

  it("reads a verified certificate once per socket", () => {
    const getPeerCertificate = vi.fn(() => cert as never);
    const socket = { authorized: true, getPeerCertificate };
    const identity = peerIdentityOf(socket);
    expect(identity).toEqual({
      commonName: "billing",
      subject: { O: "Acme", OU: ["a", "b"], CN: "billing" },
      subjectAltNames: ["URI:spiffe://acme/billing"],
      issuer: { CN: "acme-ca" },
      fingerprint256: "AB:CD",
      raw: new Uint8Array([1, 2, 3]),
    });
    expect(Object.isFrozen(identity)).toBe(true);
    expect(peerIdentityOf(socket)).toBe(identity);
    expect(getPeerCertificate).toHaveBeenCalledTimes(1);
  });

  it("is undefined for a cleartext socket, no certificate, or one that did not verify", () => {
    expect(peerIdentityOf({ remoteAddress: "10.0.0.1" } as never)).toBeUndefined();
    expect(peerIdentityOf(undefined)).toBeUndefined();
    expect(peerIdentityOf({ authorized: true, getPeerCertificate: () => ({}) })).toBeUndefined();
    const unverified = { authorized: false, getPeerCertificate: vi.fn(() => cert as never) };
    expect(peerIdentityOf(unverified)).toBeUndefined();
    expect(unverified.getPeerCertificate).not.toHaveBeenCalled();
  });

  it("takes the last of several common names", () => {
    const several = { ...cert, subject: { CN: ["outer", "inner"] } };
    expect(peerIdentityOf({ authorized: true, getPeerCertificate: () => several as never })?.commonName).toBe(
      "inner",
    );
  });
});
