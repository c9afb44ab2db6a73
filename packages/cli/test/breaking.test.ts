import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../src/index.ts";
import { captureIo } from "./io.ts";

const v1 = (fields: string) => `syntax = "proto3";
package shop.v1;
message Item {
${fields}
}
`;
const original = v1(`  string sku = 1;\n  int64 price_cents = 2;`);

let repo: string;
const git = (...args: string[]) =>
  promisify(execFile)(
    "git",
    ["-c", "user.name=weft", "-c", "user.email=weft@example.invalid", "-c", "commit.gpgsign=false", ...args],
    { cwd: repo },
  );
const edit = (text: string) => writeFile(join(repo, "shop/v1/item.proto"), text);

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), "weft-cli-breaking-"));
  await mkdir(join(repo, "shop/v1"), { recursive: true });
  await git("init", "--quiet");
  await edit(original);
  await git("add", "-A");
  await git("commit", "--quiet", "-m", "v1");
  await git("tag", "v1");
});
afterAll(async () => {
  await rm(repo, { recursive: true, force: true });
});

describe("weft breaking", () => {
  it("adding a field is compatible (exit 0)", async () => {
    await edit(v1(`  string sku = 1;\n  int64 price_cents = 2;\n  string name = 3;`));
    const io = captureIo(repo);
    expect(await run(["breaking", "--against", "v1"], io)).toBe(0);
    expect(io.stdout).toBe("No breaking changes against v1.\n");
  });

  it("changing a field's number or type is breaking (exit 1), with buf's findings", async () => {
    await edit(v1(`  string sku = 5;\n  string price_cents = 2;`));
    const io = captureIo(repo);
    expect(await run(["breaking", "--against", "HEAD"], io)).toBe(1);
    const findings = io.stdout.trim().split("\n");
    // one finding per line, "file:line:column:message", as buf prints them
    for (const line of findings) expect(line).toMatch(/^shop\/v1\/item\.proto:\d+:\d+:/);
    expect(
      findings.some((line) => /field "1" with name "sku" on message "Item" was deleted/.test(line)),
    ).toBe(true);
    expect(
      findings.some((line) => /Field "2" with name "price_cents" .* from "int64" to "string"/.test(line)),
    ).toBe(true);
    expect(io.stderr).toBe(`${findings.length} breaking changes against HEAD.\n`);
  });

  it("usage and tool errors exit 2", async () => {
    let io = captureIo(repo);
    expect(await run(["breaking"], io)).toBe(2);
    expect(io.stderr).toContain("--against <git-ref> is required");
    io = captureIo(repo);
    expect(await run(["breaking", "--against", "no-such-branch"], io)).toBe(2);
    expect(io.stderr).toContain('unknown git ref "no-such-branch"');
    io = captureIo(tmpdir());
    expect(await run(["breaking", "--against", "HEAD"], io)).toBe(2);
    expect(io.stderr).toContain("is not inside a git repository");
  });
});
