import { Reason } from "@weft/core";
import { type Envelope, newMessageId } from "@weft/messaging";
import { describe, expect, it } from "vitest";
import { decodeWalMessage, encodeWalMessage, envelopeOfRow } from "./wal-message.ts";

const envelope: Envelope = {
  id: newMessageId(),
  kind: "event",
  destination: "orders.created.p3",
  key: "customer-7",
  correlationId: "c-1",
  replyTo: undefined,
  expiresAt: 1_900_000_000_000,
  publishedAt: 1_800_000_000_000,
  contentType: "application/json",
  headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-app": "é" },
  body: new TextEncoder().encode('{"order":1}'),
};

describe("the wal storage's bytes", () => {
  it("round-trip an envelope through the envelope's header mapping", () => {
    const back = decodeWalMessage(encodeWalMessage(envelope));
    expect({ ...back, body: Buffer.from(back.body).toString() }).toEqual({
      ...envelope,
      body: '{"order":1}',
    });
  });

  it("refuse bytes they did not write with MALFORMED_MESSAGE", () => {
    for (const bytes of [
      new Uint8Array([0, 0]),
      new Uint8Array([0, 0, 0, 9, 1]),
      Buffer.from("\0\0\0\x02{]"),
    ])
      expect(() => decodeWalMessage(bytes)).toThrow(
        expect.objectContaining({ reason: Reason.MALFORMED_MESSAGE }),
      );
  });
});

describe("an outbox row", () => {
  it("reads back as the envelope it stored (bigint as text, headers as JSON text or object)", () => {
    const row = {
      seq: "1",
      id: envelope.id,
      destination: envelope.destination,
      key: "customer-7",
      kind: "event",
      correlation_id: "c-1",
      expires_at: "1900000000000",
      content_type: "application/json",
      headers: JSON.stringify(envelope.headers),
      body: Buffer.from(envelope.body),
      created_at: new Date(1_800_000_000_000).toISOString(),
    };
    expect(envelopeOfRow(row)).toEqual({ ...envelope, body: Buffer.from(envelope.body) });
  });

  it("refuses a row publish did not write with MALFORMED_MESSAGE, saying what is wrong", () => {
    const row = {
      seq: "1",
      id: envelope.id,
      destination: "orders.created",
      key: null,
      kind: "event",
      correlation_id: null,
      expires_at: null,
      content_type: "application/json",
      headers: {},
      body: Buffer.from("{}"),
      created_at: new Date(),
    };
    expect(envelopeOfRow(row).kind).toBe("event");
    for (const [bad, why] of [
      [{ headers: "[1, 2]" }, "its headers are not an object of strings"],
      [{ headers: "{" }, "its headers are not JSON"],
      [{ headers: { a: 1 } as never }, "its headers are not an object of strings"],
      [{ kind: "bogus" }, 'unknown kind "bogus"'],
      [{ destination: "orders created" }, '"orders created" is not a destination name'],
      [{ expires_at: "soon" }, 'expires_at "soon" is not milliseconds'],
      [{ created_at: "yesterday" }, 'created_at "yesterday" is not a time'],
    ] as const)
      expect(() => envelopeOfRow({ ...row, ...bad })).toThrow(
        expect.objectContaining({
          reason: Reason.MALFORMED_MESSAGE,
          rawMessage: `malformed outbox message: ${why}`,
        }),
      );
  });
});
