import { describe, expect, it } from "vitest";
import { clientCall } from "../../test/client-calls.ts";
import { FakeNode, fakeNodes } from "../../test/fake-node.ts";
import type { DoneInfo } from "../balancer/balancer.ts";
import { messageType } from "../codec/json-codec.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { ConfigError, WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import { defineService, methodsOf, unary } from "../service/service.ts";
import type { TransportNode } from "../transport/node.ts";
import { Cluster } from "./cluster.ts";
import type { NodeHealth } from "./node-health.ts";

const Svc = defineService("test.Svc", { get: unary(messageType<unknown>(), messageType<unknown>()) });
const [get] = methodsOf(Svc) as [Call["method"]];

/** The message of a unary result. */
async function answered(result: Promise<CallResult>): Promise<unknown> {
  const r = await result;
  return r.stream ? undefined : r.message;
}

/**
 * A node health that refuses the addresses in `refused` and records every call it gets; each attempt
 * started gets the next permit (1, 2, …), which its `done` must be given back.
 */
function recordingHealth() {
  const refused = new Set<string>();
  const log: string[] = [];
  let permits = 0;
  const health: NodeHealth & { refused: Set<string>; log: string[]; allowsCalls: number } = {
    refused,
    log,
    allowsCalls: 0,
    get restricting() {
      return refused.size > 0;
    },
    allows(node: TransportNode) {
      health.allowsCalls++;
      return !refused.has(node.address);
    },
    started(node: TransportNode) {
      log.push(`started ${node.address} #${++permits}`);
      return permits;
    },
    done(node: TransportNode, info: DoneInfo, permit: number) {
      const outcome = info.error === undefined ? "ok" : (info.error as WeftError).code;
      log.push(`done ${node.address} #${permit} ${outcome}`);
    },
    refusedError: () => new WeftError(Code.UNAVAILABLE, "all open", { reason: Reason.CIRCUIT_OPEN }),
  };
  return health;
}

describe("Cluster with nodeHealth", () => {
  it("reports every attempt once with its permit, and filters nothing while it does not restrict", async () => {
    const nodes = fakeNodes("a", "b");
    nodes[1]!.failWith = new WeftError(Code.INTERNAL, "boom");
    const health = recordingHealth();
    const cluster = new Cluster(nodes, { nodeHealth: health });
    expect(await answered(cluster.call(clientCall(get)))).toBe("a");
    await expect(cluster.call(clientCall(get))).rejects.toMatchObject({ code: Code.INTERNAL });
    expect(health.log).toEqual([
      "started a #1",
      "done a #1 ok",
      "started b #2",
      `done b #2 ${Code.INTERNAL}`,
    ]);
    expect(health.allowsCalls).toBe(0);
  });

  it("lets the balancer pick only among the nodes it allows", async () => {
    const nodes = fakeNodes("a", "b", "c");
    const health = recordingHealth();
    health.refused.add("b");
    const cluster = new Cluster(nodes, { nodeHealth: health });
    const seen: unknown[] = [];
    for (let i = 0; i < 6; i++) seen.push(await answered(cluster.call(clientCall(get))));
    expect(seen).toEqual(["a", "c", "a", "c", "a", "c"]);
    expect(nodes[1]!.calls).toHaveLength(0);
  });

  it("fails fast with its error when it refuses every node, sending nothing", async () => {
    const nodes = fakeNodes("a", "b");
    const health = recordingHealth();
    health.refused.add("a").add("b");
    const cluster = new Cluster(nodes, { nodeHealth: health });
    await expect(cluster.call(clientCall(get))).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      reason: Reason.CIRCUIT_OPEN,
    });
    expect(nodes.every((n) => n.calls.length === 0)).toBe(true);
    expect(health.log).toEqual([]);
  });

  it("reports a node that cannot connect, and the call goes on to an allowed node", async () => {
    const down = new FakeNode("down");
    down.ready = false;
    down.connect = () =>
      Promise.reject(new WeftError(Code.UNAVAILABLE, "refused", { reason: Reason.CONNECTION_FAILED }));
    const [up] = fakeNodes("up");
    const health = recordingHealth();
    const cluster = new Cluster([down, up!], { nodeHealth: health });
    expect(await answered(cluster.call(clientCall(get)))).toBe("up");
    expect(health.log).toEqual([
      "started down #1",
      `done down #1 ${Code.UNAVAILABLE}`,
      "started up #2",
      "done up #2 ok",
    ]);
  });

  it("is checked at construction", () => {
    expect(() => new Cluster(fakeNodes("a"), { nodeHealth: {} as NodeHealth })).toThrow(ConfigError);
    expect(() => new Cluster(fakeNodes("a"), { nodeHealth: {} as NodeHealth })).toThrow(/nodeHealth/);
  });
});
