import { describe, expect, it } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { stalledSocket, streamIds, turn } from "../../test/stalled-socket.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { encodeFrame } from "../protocol/encode.ts";
import { DEFAULT_LIMITS, FrameType } from "../protocol/frame.ts";
import { encodeGoaway } from "../protocol/status.ts";
import { clientStreaming, defineService, methodsOf, unary } from "../service/service.ts";
import { ClientConnection } from "./client-connection.ts";

const Svc = defineService("test.Svc", {
  get: unary(messageType<{ n: number | string }>(), messageType<{ n: number }>()),
  sum: clientStreaming(messageType<{ n: number }>(), messageType<{ n: number }>()),
});
const [get, sum] = methodsOf(Svc) as [Call["method"], Call["method"]];

describe("ClientConnection on GOAWAY", () => {
  it("takes back the queued REQUESTs above the last stream id: never written, refused and resent", async () => {
    const { socket, written, release } = stalledSocket();
    // a client's connection, as a TCP node makes it: a backlog waits in its queue, 100,000 bytes at a time
    const conn = new ClientConnection(socket, "server:1", {
      limits: DEFAULT_LIMITS,
      compression: null,
      keepalive: null,
      connection: { keepBacklog: true, answersOnly: true, highWaterBytes: 100_000, lowWaterBytes: 0 },
    });
    const resent: Array<{ call: Call; attempt: number }> = [];
    const retry = (call: Call, attempt: number): Promise<CallResult> => {
      resent.push({ call, attempt });
      return new Promise(() => {});
    };
    // stream id 1 fills the socket (over its own 64 KiB mark): it asks to drain
    const outcomes = [conn.start(clientCall(get, { message: { n: "x".repeat(70_000) } }), retry)];
    await turn();
    expect(socket.writableNeedDrain).toBe(true);
    // 2 and 3 at or below the GOAWAY's last stream id; 4, 5 and 6 (no resend) above it, their
    // REQUEST all they send; 7 above it too, but it streams its request, so its REQUEST stays
    const calls = [2, 3, 4, 5].map(() => clientCall(get));
    for (const call of calls) outcomes.push(conn.start(call, retry));
    const noRetry = conn.start(clientCall(get)).catch((e: unknown) => e);
    const streaming = conn.start(clientCall(sum, { messages: never() }), retry).catch((e: unknown) => e);
    await turn();
    expect(streamIds(written)).toEqual([1]); // the rest waits in the connection's queue

    const goaway = encodeGoaway(3, Code.UNAVAILABLE, "server is shutting down");
    socket.push(encodeFrame(FrameType.GOAWAY, 0, 0, 0, 0, [["reason", Reason.SHUTTING_DOWN]], goaway));
    await turn();
    // refused: the two above the last stream id are handed back to be sent elsewhere...
    expect(resent).toEqual([
      { call: calls[2], attempt: 1 },
      { call: calls[3], attempt: 1 },
    ]);
    // ...one with no one to resend it fails with REFUSED_STREAM, as does the one whose request was opened
    expect(await noRetry).toMatchObject({ code: Code.UNAVAILABLE, reason: Reason.REFUSED_STREAM });
    expect(((await streaming) as WeftError).reason).toBe(Reason.REFUSED_STREAM);
    expect(conn.usable).toBe(false);

    for (let i = 0; i < 5; i++) {
      release();
      await turn();
    }
    // 4, 5 and 6 never reached the wire; 7, whose request stream was already open, did
    expect(streamIds(written)).toEqual([1, 2, 3, 7]);
    expect(conn.unsentBytes).toBe(0);
    // 1 to 3 are still the server's to answer
    const settled = outcomes.map((p) =>
      p.then(
        () => "answered",
        (e: WeftError) => e.reason,
      ),
    );
    conn.destroy(new WeftError(Code.UNAVAILABLE, "test over", { reason: Reason.CONNECTION_CLOSED }));
    expect(await Promise.all(settled.slice(0, 3))).toEqual(Array(3).fill(Reason.CONNECTION_CLOSED));
  });
});

/** A request stream that never yields. */
async function* never(): AsyncGenerator<{ n: number }> {
  await new Promise(() => {});
}
