import type { Server as NetServer } from "node:net";
import { createServer } from "@weft/core";
import { describe, expect, it, vi } from "vitest";
import { listenGrpc } from "../../src/index.ts";

// The listening socket is private to listenGrpc: capture it where it is made.
const made = vi.hoisted(() => [] as NetServer[]);
vi.mock("node:net", async (importOriginal) => {
  const net = await importOriginal<typeof import("node:net")>();
  return {
    ...net,
    createServer: (...args: Parameters<typeof net.createServer>) => {
      const server = net.createServer(...args);
      made.push(server);
      return server;
    },
  };
});

describe("listenGrpc's listening socket", () => {
  it("reports an error after listening (an accept failing with EMFILE, say) instead of crashing", async () => {
    const errors: unknown[] = [];
    const server = createServer({ onError: (e) => errors.push(e) });
    const listener = await listenGrpc(server);
    expect(made).toHaveLength(1);
    const emfile = Object.assign(new Error("accept EMFILE"), { code: "EMFILE" });
    // with no listener, emitting `error` throws: in the process, an uncaught exception
    expect(() => made[0]!.emit("error", emfile)).not.toThrow();
    expect(errors).toEqual([emfile]);
    await server.shutdown();
    await listener.close();
  });
});
