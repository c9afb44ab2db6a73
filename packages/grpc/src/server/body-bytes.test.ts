import type { OpenCall } from "@weft/core/internal";
import { describe, expect, it } from "vitest";
import { encodeEnvelope, FLAG_TRAILERS } from "../protocol/envelope.ts";
import { BodyBytes } from "./body-bytes.ts";

/** The two counting methods of a call; the rest of `OpenCall` is not used by `BodyBytes`. */
function countingCall() {
  const counted = { sent: [] as number[], received: [] as number[] };
  const call = {
    countSent: (n: number) => counted.sent.push(n),
    countReceived: (n: number) => counted.received.push(n),
  } as unknown as OpenCall;
  return { call, counted };
}

async function* chunks(...list: Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* list;
}

async function drain(body: AsyncIterable<Uint8Array>): Promise<void> {
  for await (const _ of body);
}

describe("BodyBytes", () => {
  it("keeps what was read before the call was opened and gives it to the call", async () => {
    const bytes = new BodyBytes();
    const { call, counted } = countingCall();
    const body = bytes.request(chunks(Buffer.alloc(3), Buffer.alloc(4)), false);
    await drain(body);
    expect(bytes.opened).toBe(false);
    bytes.open(call);
    expect(bytes.opened).toBe(true);
    expect(counted.received).toEqual([7]);
    await drain(bytes.request(chunks(Buffer.alloc(2)), false));
    expect(counted.received).toEqual([7, 2]);
  });

  it("counts the message frames of an enveloped body, however it is cut", async () => {
    const bytes = new BodyBytes();
    const { call, counted } = countingCall();
    bytes.open(call);
    const wire = Buffer.concat([
      encodeEnvelope(Buffer.from("hello")),
      encodeEnvelope(Buffer.from("grpc-status: 0\r\n"), FLAG_TRAILERS),
    ]);
    const body = bytes.response(chunks(wire.subarray(0, 3), wire.subarray(3, 9), wire.subarray(9)), true);
    const out: Buffer[] = [];
    for await (const c of body) out.push(Buffer.from(c));
    expect(Buffer.concat(out)).toEqual(wire); // passed on unchanged
    expect(counted.sent).toEqual([5]);
  });

  it("counts nothing sent for a request that opened no call", async () => {
    const bytes = new BodyBytes();
    await drain(bytes.response(chunks(Buffer.alloc(8)), false));
    const { call, counted } = countingCall();
    bytes.open(call);
    expect(counted).toEqual({ sent: [], received: [] });
  });

  it("passes throw and return on to the source, so a failed write reaches the handler's stream", async () => {
    const seen: unknown[] = [];
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield Buffer.alloc(1);
        yield Buffer.alloc(1);
      } catch (e) {
        seen.push(e);
      } finally {
        seen.push("finally");
      }
    }
    const failed = new BodyBytes()
      .response(source(), false)
      [Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
    await failed.next();
    const error = new Error("write failed");
    expect(await failed.throw?.(error)).toEqual({ done: true, value: undefined });
    expect(seen).toEqual([error, "finally"]);

    seen.length = 0;
    const stopped = new BodyBytes()
      .response(source(), false)
      [Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
    await stopped.next();
    expect(await stopped.return?.()).toEqual({ done: true, value: undefined });
    expect(seen).toEqual(["finally"]);
  });
});
