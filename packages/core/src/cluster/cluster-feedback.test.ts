import { describe, expect, it, vi } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { deferred } from "../../test/deferred.ts";
import type { Balancer, BalancerNode, DoneInfo, Picked } from "../balancer/balancer.ts";
import type { RetryRefused } from "../call/client-call.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { Metadata } from "../metadata/metadata.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import type { TransportNode } from "../transport/node.ts";
import { Cluster } from "./cluster.ts";

const Svc = defineService("test.Svc", { get: unary(messageType<unknown>(), messageType<unknown>()) });
const [get] = methodsOf(Svc) as [Call["method"]];

/** A node that answers, fails or refuses each call as the test says. */
class Node implements TransportNode {
  ready = true;
  backingOff = false;
  mode: "answer" | "fail" | "refuse" = "answer";
  readonly address: string;
  constructor(address: string) {
    this.address = address;
  }
  connect(): Promise<unknown> {
    return Promise.resolve();
  }
  call(call: Call, retry: RetryRefused | undefined, attempt: number): Promise<CallResult> {
    if (this.mode === "refuse" && retry !== undefined) return retry(call, attempt + 1);
    if (this.mode === "fail") return Promise.reject(new WeftError(Code.INTERNAL, "boom"));
    const headers = new Metadata();
    return Promise.resolve({ stream: false, headers, message: this.address, trailers: new Metadata() });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Round robin that records every pick and every report. */
function recording(feedback: boolean) {
  const reports: { node: string; info: DoneInfo }[] = [];
  let next = 0;
  const balancer: Balancer = {
    feedback,
    pick<N extends BalancerNode>(nodes: readonly N[]): Picked<N> {
      const node = nodes[next++ % nodes.length]!;
      return { node, done: (info) => reports.push({ node: node.address, info }) };
    },
  };
  return { balancer, reports };
}

describe("Cluster with a feedback balancer", () => {
  it("reports each call once with its outcome", async () => {
    const [a, b] = [new Node("a"), new Node("b")];
    b.mode = "fail";
    const { balancer, reports } = recording(true);
    const cluster = new Cluster([a, b], { balancer });
    await cluster.call(clientCall(get, {}));
    await expect(cluster.call(clientCall(get, {}))).rejects.toMatchObject({ code: Code.INTERNAL });
    expect(reports.map((r) => r.node)).toEqual(["a", "b"]);
    expect(reports[0]!.info.error).toBeUndefined();
    expect(reports[1]!.info.error).toMatchObject({ code: Code.INTERNAL });
    for (const r of reports) expect(r.info.latencyMs).toBeGreaterThanOrEqual(0);
  });

  it("reports a refused attempt, then the resent one", async () => {
    const [a, b] = [new Node("a"), new Node("b")];
    a.mode = "refuse";
    const { balancer, reports } = recording(true);
    const cluster = new Cluster([a, b], { balancer });
    expect(await cluster.call(clientCall(get, {}))).toMatchObject({ message: "b" });
    expect(reports.map((r) => r.node)).toEqual(["a", "b"]);
    expect(reports[0]!.info.error).toMatchObject({ code: Code.UNAVAILABLE, reason: "REFUSED_STREAM" });
    expect(reports[1]!.info.error).toBeUndefined();
  });

  it("reports a node that cannot connect, and the next one", async () => {
    const [a, b] = [new Node("a"), new Node("b")];
    a.ready = false;
    const failed = deferred<void>();
    a.connect = () => failed.promise;
    const { balancer, reports } = recording(true);
    const cluster = new Cluster([a, b], { balancer });
    const pending = cluster.call(clientCall(get, {}));
    failed.reject(new WeftError(Code.UNAVAILABLE, "refused"));
    expect(await pending).toMatchObject({ message: "b" });
    expect(reports.map((r) => [r.node, r.info.error === undefined])).toEqual([
      ["a", false],
      ["b", true],
    ]);
  });

  it("times an attempt sent at once from its pick's time, when the balancer gives it", async () => {
    const reports: DoneInfo[] = [];
    const balancer: Balancer = {
      feedback: true,
      pick: <N extends BalancerNode>(nodes: readonly N[]): Picked<N> => ({
        node: nodes[0]!,
        pickedAt: 1_000,
        done: (info) => reports.push(info),
      }),
    };
    const clock = vi.spyOn(performance, "now").mockReturnValue(1_005);
    try {
      await new Cluster([new Node("a")], { balancer }).call(clientCall(get, {}));
      // the end of the attempt only: its start is the pick's
      expect(clock).toHaveBeenCalledTimes(1);
    } finally {
      clock.mockRestore();
    }
    expect(reports).toEqual([{ latencyMs: 5, error: undefined }]);
  });

  it("never reports to a balancer without feedback", async () => {
    const { balancer, reports } = recording(false);
    const cluster = new Cluster([new Node("a")], { balancer });
    await cluster.call(clientCall(get, {}));
    expect(reports).toHaveLength(0);
    expect(() => new Cluster([new Node("a")], { balancer, picker: { pick: (ns) => ns[0] } })).toThrow(
      /picker/,
    );
  });
});
