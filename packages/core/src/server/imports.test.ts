/**
 * The server's files import one another one way only: no file imports a file that imports it back,
 * directly or through others, type imports included.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const dir = import.meta.dirname;

/** Each source file of this folder and the files of this folder it imports or re-exports from. */
function importGraph(): Map<string, string[]> {
  const files = readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const source = readFileSync(join(dir, file), "utf8");
    const targets = [...source.matchAll(/\bfrom\s+"\.\/([^"/]+\.ts)"/g)].map((m) => m[1]!);
    graph.set(file, targets);
  }
  return graph;
}

/** Every cycle found, as the chain of files that closes it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (file: string) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "visiting") {
      found.push([...path.slice(path.indexOf(file)), file]);
      return;
    }
    state.set(file, "visiting");
    path.push(file);
    for (const next of graph.get(file) ?? []) visit(next);
    path.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file);
  return found;
}

describe("packages/core/src/server imports", () => {
  it("has no cycle", () => {
    const graph = importGraph();
    expect(graph.get("server.ts")).toContain("server-connection.ts"); // the scan sees imports
    expect(cycles(graph)).toEqual([]);
  });

  it("finds a cycle when there is one", () => {
    const graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
    ]);
    expect(cycles(graph)).toEqual([["a.ts", "b.ts", "c.ts", "a.ts"]]);
  });
});
