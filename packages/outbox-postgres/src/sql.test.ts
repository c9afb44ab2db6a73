import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { type ClientPool, inTransaction } from "./sql.ts";

describe("inTransaction", () => {
  it("survives the connection being lost while it holds the client, and releases it broken", async () => {
    const lost = new Error("terminating connection due to unexpected postmaster exit");
    const released: unknown[] = [];
    let gone = false;
    // as pg's PoolClient: an EventEmitter, whose `error` event throws when nobody listens
    const client = Object.assign(new EventEmitter(), {
      async query() {
        if (gone) throw new Error("Connection terminated unexpectedly");
        return { rows: [], rowCount: 0 };
      },
      release(error?: Error | boolean) {
        released.push(error);
      },
    });
    const pool = { connect: async () => client, query: client.query } as unknown as ClientPool;
    const done = inTransaction(pool, async (tx) => {
      gone = true;
      client.emit("error", lost); // the server went away between two statements
      await tx.query("SELECT 1");
    });
    await expect(done).rejects.toThrow("Connection terminated unexpectedly");
    expect(released).toEqual([lost]);
    expect(client.listenerCount("error")).toBe(0);
  });
});
