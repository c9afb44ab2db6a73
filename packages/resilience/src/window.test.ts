import { describe, expect, it } from "vitest";
import { BucketWindow } from "./window.ts";

describe("BucketWindow", () => {
  it("keeps running totals of the last windowMs and drops buckets as the clock crosses them", () => {
    const t0 = 1_764_000_000_000; // a wall-clock time: slot numbers beyond small integers
    const window = new BucketWindow(1_000, 10);
    window.add(t0, 1, 1);
    window.add(t0 + 50, 2, 0);
    window.add(t0 + 450, 3, 1);
    expect([window.count, window.marked]).toEqual([6, 2]);
    window.slide(t0 + 1_000); // the bucket of t0 and t0 + 50 left
    expect([window.count, window.marked]).toEqual([3, 1]);
    window.add(t0 + 1_399, 1, 0);
    expect([window.count, window.marked]).toEqual([4, 1]);
    window.slide(t0 + 1_400); // t0 + 450 left
    expect([window.count, window.marked]).toEqual([1, 0]);
    window.slide(t0 + 60_000);
    expect([window.count, window.marked]).toEqual([0, 0]);
  });

  it("counts in the current bucket when the clock goes back", () => {
    const window = new BucketWindow(1_000, 10);
    window.add(5_000, 1, 0);
    window.add(1_000, 1, 1); // earlier than the window: still counted now
    expect([window.count, window.marked]).toEqual([2, 1]);
    window.slide(5_999);
    expect([window.count, window.marked]).toEqual([2, 1]);
    window.slide(6_000);
    expect([window.count, window.marked]).toEqual([0, 0]);
  });

  it("forgets every count on reset", () => {
    const window = new BucketWindow(1_000, 10);
    window.add(0, 5, 5);
    window.add(500, 5, 0);
    window.reset();
    expect([window.count, window.marked]).toEqual([0, 0]);
    window.add(600, 1, 0);
    window.slide(1_550); // the bucket of 500 leaves: it held nothing any more
    expect([window.count, window.marked]).toEqual([1, 0]);
  });
});
