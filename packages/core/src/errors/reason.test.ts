import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFiles } from "../../test/source-files.ts";
import { Reason } from "./reason.ts";

const root = join(import.meta.dirname, "../../../..");

/** The reasons named in the first column of docs/protocol.md §16's reasons table. */
function documentedReasons(): Set<string> {
  const spec = readFileSync(join(root, "docs/protocol.md"), "utf8");
  const start = spec.indexOf("## 16. Status codes and reasons");
  const end = spec.indexOf("\n## 17.", start);
  const section = spec.slice(start, end);
  const out = new Set<string>();
  for (const line of section.split("\n")) {
    if (!line.startsWith("| `")) continue;
    const first = line.split("|")[1]!;
    for (const m of first.matchAll(/`([A-Z_]+)`/g)) out.add(m[1]!);
  }
  return out;
}

describe("Reason", () => {
  it("each constant's value is its name", () => {
    for (const [name, value] of Object.entries(Reason)) expect(value).toBe(name);
  });

  it("is exactly the reasons table of docs/protocol.md §16", () => {
    expect([...documentedReasons()].sort()).toEqual(Object.values(Reason).sort());
  });

  it("is the only way Weft's packages spell a reason (no string literals in their sources)", () => {
    const known = new Set<string>(Object.values(Reason));
    const offenders: string[] = [];
    const packages = join(root, "packages");
    for (const pkg of readdirSync(packages)) {
      let files: string[];
      try {
        files = sourceFiles(join(packages, pkg, "src"));
      } catch {
        continue; // a package without src/
      }
      for (const file of files) {
        const text = readFileSync(file, "utf8");
        for (const m of text.matchAll(/(?:reason: |reason [!=]== |, )"([A-Z][A-Z_]+)"/g)) {
          if (known.has(m[1]!)) offenders.push(`${file.slice(root.length + 1)}: "${m[1]}"`);
        }
      }
    }
    expect(offenders).toEqual([]);
  });
});
