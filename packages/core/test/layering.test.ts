import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { sourceFiles } from "./source-files.ts";

/*
 * The layer order of docs/architecture.md, enforced: inside @weft/core no import points from a lower
 * layer to a higher one (type-only imports included), and the packages above core reach it only
 * through its three entry points.
 */

const root = resolve(import.meta.dirname, "../../..");
const coreSrc = join(root, "packages/core/src");

/** Rank of each folder of core/src: a file may import only folders of its own rank or below. */
const RANK: Record<string, number> = {
  errors: 0,
  telemetry: 0,
  metadata: 0,
  codec: 1,
  protocol: 1,
  service: 2,
  interceptor: 3,
  context: 3,
  call: 3,
  transport: 4,
  balancer: 4,
  discovery: 4,
  cluster: 5,
  client: 6,
  server: 6,
};
/** The entry points (`index.ts`, `internal.ts`) sit above everything. */
const TOP = 99;

/** Every module specifier a file imports or re-exports, `import type` included. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"/gms)) out.push(m[1]!);
  for (const m of text.matchAll(/^\s*import\s+"([^"]+)"/gm)) out.push(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*"([^"]+)"\s*\)/g)) out.push(m[1]!);
  return out;
}

function rankOf(file: string): number {
  const rel = relative(coreSrc, file);
  const folder = rel.includes("/") ? rel.slice(0, rel.indexOf("/")) : undefined;
  if (folder === undefined) return TOP;
  const rank = RANK[folder];
  if (rank === undefined)
    throw new Error(`core/src/${folder} has no layer: add it to RANK and docs/architecture.md`);
  return rank;
}

describe("layering", () => {
  it("inside @weft/core, no import points from a lower layer to a higher one", () => {
    const violations: string[] = [];
    for (const file of sourceFiles(coreSrc)) {
      const from = rankOf(file);
      for (const spec of specifiers(file)) {
        if (!spec.startsWith(".")) continue;
        const target = resolve(dirname(file), spec);
        const to = rankOf(target);
        if (to > from) violations.push(`${relative(coreSrc, file)} → ${relative(coreSrc, target)}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("@weft/core depends on no other Weft package and only on its declared dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(root, "packages/core/package.json"), "utf8")) as {
      dependencies?: Record<string, string>;
    };
    const allowed = new Set(Object.keys(pkg.dependencies ?? {}));
    const violations: string[] = [];
    for (const file of sourceFiles(coreSrc)) {
      for (const spec of specifiers(file)) {
        if (spec.startsWith(".") || spec.startsWith("node:")) continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!;
        if (!allowed.has(name)) violations.push(`${relative(coreSrc, file)} → ${spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("the wire protocol never touches sockets (it is fed plain bytes)", () => {
    const violations: string[] = [];
    for (const file of sourceFiles(join(coreSrc, "protocol"))) {
      for (const spec of specifiers(file)) {
        if (/^node:(net|tls|http2?|dgram)$/.test(spec))
          violations.push(`${relative(coreSrc, file)} → ${spec}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it("packages above core reach it only through @weft/core, /internal and /protocol", () => {
    const entry = new Set(["@weft/core", "@weft/core/internal", "@weft/core/protocol"]);
    const violations: string[] = [];
    const packages = join(root, "packages");
    for (const name of readdirSync(packages)) {
      if (name === "core") continue;
      let files: string[];
      try {
        files = sourceFiles(join(packages, name, "src"));
      } catch {
        continue;
      }
      for (const file of files) {
        for (const spec of specifiers(file)) {
          if (spec.startsWith("@weft/core") && !entry.has(spec)) {
            violations.push(`${relative(root, file)} → ${spec}`);
          }
          if (spec.includes("/core/src/")) violations.push(`${relative(root, file)} → ${spec}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
