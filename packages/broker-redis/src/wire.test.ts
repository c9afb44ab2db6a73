import { Reason } from "@weft/core";
import { type Envelope, newMessageId } from "@weft/messaging";
import { describe, expect, it } from "vitest";
import { entryEnvelope, entryFields, payloadEnvelope, payloadOf } from "./wire.ts";

const envelope: Envelope = {
  id: newMessageId(),
  kind: "command",
  destination: "orders.placed",
  key: "k",
  correlationId: "c",
  replyTo: "_inbox.x",
  expiresAt: 2_000_000_000_000,
  publishedAt: 1_900_000_000_000,
  contentType: "application/octet-stream",
  headers: { traceparent: "00-a-b-01", body: "a header named body" },
  body: new Uint8Array([0, 10, 0x7b, 255]),
};

/** Fields as Redis hands them back: every one a Buffer. */
const asReplied = (fields: (string | Buffer)[]) => fields.map((f) => Buffer.from(f));

describe("stream entries", () => {
  it("round-trip an envelope; the body is the last field, a header named body stays a header", () => {
    const fields = entryFields(envelope);
    expect(fields.at(-2)).toBe("body");
    const back = entryEnvelope("orders.placed", "1-0", asReplied(fields));
    expect(back).toEqual({
      envelope: { ...envelope, body: Buffer.from(envelope.body) },
      malformed: undefined,
    });
  });

  it("a raw entry gets the entry id and its time; without a body field the body is empty", () => {
    const { envelope: e } = entryEnvelope("d", "1718000000000-3", asReplied(["a", "1"]));
    expect(e).toMatchObject({
      id: "1718000000000-3",
      publishedAt: 1718000000000,
      kind: "event",
      headers: { a: "1" },
    });
    expect(e.body).toHaveLength(0);
  });

  it("an entry with a malformed weft-* field comes back malformed, never thrown", () => {
    const { envelope: e, malformed } = entryEnvelope(
      "d",
      "5-0",
      asReplied(["weft-kind", "nonsense", "body", "x"]),
    );
    expect(malformed?.reason).toBe(Reason.MALFORMED_MESSAGE);
    expect(e.id).toBe("5-0");
  });
});

describe("pub/sub payloads", () => {
  it("round-trip an envelope, the body binary-safe (newlines, braces)", () => {
    expect(payloadEnvelope("_inbox.x", payloadOf(envelope))).toEqual({
      ...envelope,
      destination: "_inbox.x",
      body: Buffer.from(envelope.body),
    });
  });

  it("a raw PUBLISH without a header line (a JSON object of strings, then a newline) is all body", () => {
    for (const raw of ["hello", '{"not":"headers"} but text', '{"n": 1}\nsecond line']) {
      expect(Buffer.from(payloadEnvelope("c", Buffer.from(raw)).body).toString()).toBe(raw);
    }
    const e = payloadEnvelope("c", Buffer.from('{"x-a":"b"}\nrest'));
    expect(e.headers).toEqual({ "x-a": "b" });
    expect(Buffer.from(e.body).toString()).toBe("rest");
  });
});
