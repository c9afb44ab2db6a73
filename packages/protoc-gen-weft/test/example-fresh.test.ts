import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, expect, it } from "vitest";
import { buf, repoRoot } from "./buf.ts";

const GEN = "examples/catalog/src/gen";
let tmp: string | undefined;
afterAll(async () => {
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
});

async function tree(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set(relative(dir, path).split("\\").join("/"), await readFile(path, "utf8"));
  }
  return files;
}

it("the checked-in generated code of the example is what `npm run gen` produces", async () => {
  tmp = await mkdtemp(join(tmpdir(), "weft-gen-"));
  // the root template, with its out directories moved under tmp
  const result = await buf(["generate", "--template", "buf.gen.yaml", "--output", tmp], repoRoot);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);

  const fresh = await tree(join(tmp, GEN));
  const checkedIn = await tree(join(repoRoot, GEN));
  expect(fresh.size).toBeGreaterThan(0);
  const stale = [...new Set([...fresh.keys(), ...checkedIn.keys()])]
    .filter((name) => fresh.get(name) !== checkedIn.get(name))
    .sort();
  expect(stale, `${GEN} is stale (${stale.join(", ")}): run \`npm run gen\` and commit the result`).toEqual(
    [],
  );
});
