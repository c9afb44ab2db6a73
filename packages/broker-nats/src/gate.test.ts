import { describe, expect, it } from "vitest";
import { DeliveryGate } from "./gate.ts";

function gate(max: number, limit: number) {
  const delivered: number[] = [];
  const dropped: number[] = [];
  const g = new DeliveryGate<number>(max, limit, {
    deliver: (n) => delivered.push(n),
    overflow: (n) => dropped.push(n),
  });
  return { g, delivered, dropped };
}

describe("DeliveryGate", () => {
  it("hands out at most max, lines up the rest in order, drops past the limit", () => {
    const { g, delivered, dropped } = gate(2, 3);
    for (let n = 1; n <= 7; n++) g.offer(n);
    expect(delivered).toEqual([1, 2]);
    expect(dropped).toEqual([6, 7]);
    expect([g.outstanding, g.room]).toEqual([2, 0]);
    g.release();
    g.release();
    expect(delivered).toEqual([1, 2, 3, 4]);
    g.release();
    g.release();
    g.release();
    expect(delivered).toEqual([1, 2, 3, 4, 5]);
    expect([g.outstanding, g.room]).toEqual([0, 2]);
  });

  it("never overtakes the line: a new item waits behind the waiting ones", () => {
    const { g, delivered } = gate(1, 10);
    g.offer(1);
    g.offer(2);
    g.release(); // 2 goes out
    g.offer(3);
    expect(delivered).toEqual([1, 2]);
    g.release();
    expect(delivered).toEqual([1, 2, 3]);
  });

  it("wakes a waiter when room frees up, and every waiter on close; close returns the line", async () => {
    const { g, dropped } = gate(1, 10);
    g.offer(1);
    g.offer(2);
    let woke = 0;
    const waiting = g.whenRoom().then(() => woke++);
    g.release(); // 2 takes the slot: still no room
    await Promise.resolve();
    expect(woke).toBe(0);
    g.release();
    await waiting;
    expect(woke).toBe(1);
    g.offer(3);
    g.offer(4);
    const closed = g.whenRoom();
    expect(g.close()).toEqual([4]);
    await closed;
    g.offer(5);
    expect(dropped).toEqual([5]);
    await g.whenRoom(); // at once once closed
  });
});
