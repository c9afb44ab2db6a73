import { describe, expect, it } from "vitest";
import { StreamTable } from "./stream-table.ts";

describe("StreamTable", () => {
  it("keeps values by stream id and counts them", () => {
    const table = new StreamTable<string>();
    table.set(3, "c");
    table.set(1, "a");
    table.set(3, "c2");
    expect(table.size).toBe(2);
    expect(table.get(3)).toBe("c2");
    expect(table.get(2)).toBeUndefined();
    table.delete(2);
    table.delete(1);
    table.delete(1);
    expect(table.size).toBe(1);
    expect(table.get(1)).toBeUndefined();
  });

  it("lists entries by increasing stream id, and clear empties it", () => {
    const table = new StreamTable<string>();
    for (const id of [5, 1, 0x7ffffffe, 2]) table.set(id, `v${id}`);
    expect([...table.entries()].map(([id]) => id)).toEqual([1, 2, 5, 0x7ffffffe]);
    table.clear();
    expect(table.size).toBe(0);
    expect([...table.entries()]).toEqual([]);
  });

  it("takes many opened and closed calls as a connection does", () => {
    const table = new StreamTable<number>();
    for (let id = 1; id <= 10_000; id++) {
      table.set(id, id);
      if (id > 50) table.delete(id - 50);
    }
    expect(table.size).toBe(50);
    expect(table.get(9951)).toBe(9951);
    expect(table.get(9950)).toBeUndefined();
  });

  it("grows when a call still in flight holds the slot a new id needs, and keeps every call", () => {
    const table = new StreamTable<number>(4);
    table.set(1, 1); // a long stream
    for (let id = 2; id <= 1_000; id++) {
      table.set(id, id);
      expect(table.get(1)).toBe(1);
      expect(table.get(id)).toBe(id);
      if (id % 7 !== 0) table.delete(id); // every 7th call stays open too
    }
    expect(table.size).toBe(1 + 142);
    expect(table.entries()[0]).toEqual([1, 1]);
    expect(
      table
        .entries()
        .map(([id]) => id)
        .slice(1, 4),
    ).toEqual([7, 14, 21]);
    expect(table.get(994)).toBe(994);
    expect(table.get(995)).toBeUndefined();
  });

  it("keeps a long stream aside instead of growing with the ids that pass it", () => {
    const table = new StreamTable<number>(64);
    table.set(1, 1); // a stream that stays open while a million short calls come and go
    for (let id = 2; id <= 1_000_000; id++) {
      table.set(id, id);
      table.delete(id);
    }
    expect(table.capacity).toBe(64);
    expect(table.size).toBe(1);
    expect(table.get(1)).toBe(1);
    table.set(1_000_001, 7);
    expect(table.entries()).toEqual([
      [1, 1],
      [1_000_001, 7],
    ]);
    table.delete(1);
    expect(table.get(1)).toBeUndefined();
    expect(table.size).toBe(1);
  });

  it("takes ids a peer chose to collide without growing with their span", () => {
    const table = new StreamTable<string>(64);
    const ids = [1, 65, 2 ** 20 + 1, 2 ** 31 + 1, 2 ** 32 - 63];
    for (const id of ids) table.set(id, `v${id}`);
    expect(table.capacity).toBe(64);
    expect(table.size).toBe(ids.length);
    for (const id of ids) expect(table.get(id)).toBe(`v${id}`);
    expect(table.entries().map(([id]) => id)).toEqual(ids);
    for (const id of ids) table.delete(id);
    expect(table.size).toBe(0);
  });

  it("grows once half of its slots hold calls", () => {
    const table = new StreamTable<number>(8);
    for (let id = 1; id <= 5; id++) table.set(id, id);
    expect(table.capacity).toBe(8);
    table.set(9, 9); // meets call 1 in its slot with 5 of 8 slots taken
    expect(table.capacity).toBe(16);
    expect(table.entries().map(([id]) => id)).toEqual([1, 2, 3, 4, 5, 9]);
  });
});
