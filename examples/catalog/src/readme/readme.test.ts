import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { tour } from "./tour.ts";

const readme = readFileSync(new URL("../../../../README.md", import.meta.url), "utf8");
const sources = ["catalog.ts", "tour.ts"].map((f) => readFileSync(new URL(f, import.meta.url), "utf8"));
const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);

/** True when every line of `block` occurs in `source`, in the same order. */
function inOrder(block: string, source: string): boolean {
  const have = lines(source);
  let at = 0;
  for (const line of lines(block)) {
    at = have.indexOf(line, at);
    if (at < 0) return false;
    at++;
  }
  return true;
}

describe("README", () => {
  it("has TypeScript examples", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(4);
  });

  it.each(blocks.map((b, i) => [i + 1, b] as const))("example %i is code that runs here", (_, block) => {
    expect(sources.some((source) => inOrder(block, source))).toBe(true);
  });

  it("runs the tour", async () => {
    const log: string[] = [];
    await tour((line) => log.push(line));
    expect(log).toContain("price 1250");
    expect(log).toContain("lookup A-100 1250");
    expect(log).toContain("over gRPC 1250");
  });
});
