import { ConfigError } from "@weft/core";
import { describe, expect, it, vi } from "vitest";
import { retryBudget } from "./budget.ts";

describe("retryBudget", () => {
  it("allows retries up to the ratio of recent requests plus the floor", () => {
    let now = 0;
    const budget = retryBudget({ ratio: 0.1, minRetriesPerSecond: 0.2, windowMs: 10_000, now: () => now });
    for (let i = 0; i < 100; i++) budget.recordRequest();
    // 0.1 × 100 + 0.2 × 10 s = 12
    let granted = 0;
    while (budget.tryRetry()) granted++;
    expect(granted).toBe(12);
    expect(budget.retries).toBe(12);
    now = 5_000;
    expect(budget.tryRetry()).toBe(false);
  });

  it("forgets requests and retries once they leave the sliding window", () => {
    let now = 0;
    const budget = retryBudget({ ratio: 0.5, minRetriesPerSecond: 0, windowMs: 1_000, now: () => now });
    for (let i = 0; i < 10; i++) budget.recordRequest();
    for (let i = 0; i < 5; i++) expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    now = 600; // half the window later: the first requests still count
    budget.recordRequest();
    budget.recordRequest();
    expect(budget.tryRetry()).toBe(true); // 0.5 × 12 = 6
    expect(budget.tryRetry()).toBe(false);
    now = 1_050; // the first bucket (t 0–99) left the window, with its 10 requests and 5 retries
    expect(budget.requests).toBe(2);
    expect(budget.retries).toBe(1);
    expect(budget.tryRetry()).toBe(false); // 0.5 × 2 = 1, one already taken
    now = 1_700; // everything left the window
    expect(budget.requests).toBe(0);
    expect(budget.retries).toBe(0);
  });

  it("keeps a floor of retries per second for a quiet client", () => {
    const budget = retryBudget({ now: () => 0 }); // defaults: 10%, 1 per second over 10 s
    let granted = 0;
    while (budget.tryRetry()) granted++;
    expect(granted).toBe(10);
  });

  it("rejects bad options with a ConfigError naming them", () => {
    expect(() => retryBudget({ ratio: -1 })).toThrow(ConfigError);
    expect(() => retryBudget({ minRetriesPerSecond: Number.NaN })).toThrow(/minRetriesPerSecond/);
    expect(() => retryBudget({ windowMs: 1 })).toThrow(/windowMs/);
  });
});

describe("retryBudget on its default clock", () => {
  it("reads no clock to count a request", () => {
    const budget = retryBudget();
    budget.recordRequest();
    const performanceNow = vi.spyOn(performance, "now");
    const dateNow = vi.spyOn(Date, "now");
    try {
      for (let i = 0; i < 100; i++) budget.recordRequest();
      expect(performanceNow).not.toHaveBeenCalled();
      expect(dateNow).not.toHaveBeenCalled();
      expect(budget.requests).toBe(101);
    } finally {
      performanceNow.mockRestore();
      dateNow.mockRestore();
    }
  });
});
