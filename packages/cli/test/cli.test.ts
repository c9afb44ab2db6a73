import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { commands, run } from "../src/index.ts";
import { captureIo, repoRoot } from "./io.ts";

describe("weft", () => {
  it("--help lists every command", async () => {
    const io = captureIo(repoRoot);
    expect(await run(["--help"], io)).toBe(0);
    expect(io.stdout).toMatch(/^Usage: weft <command>/);
    for (const c of commands) expect(io.stdout).toContain(`  ${c.name}`);
    expect(commands.map((c) => c.name)).toEqual(["gen", "breaking", "ls", "outbox", "dlq"]);
  });

  it("<command> --help and help <command> print the command's usage", async () => {
    for (const argv of [
      ["gen", "--help"],
      ["help", "breaking"],
    ]) {
      const io = captureIo(repoRoot);
      expect(await run(argv, io)).toBe(0);
      expect(io.stdout).toMatch(/^Usage: weft (gen|breaking) /);
    }
  });

  it("without a command, or with an unknown one, prints usage and exits 2", async () => {
    let io = captureIo(repoRoot);
    expect(await run([], io)).toBe(2);
    expect(io.stderr).toContain("Usage: weft <command>");
    io = captureIo(repoRoot);
    expect(await run(["deploy"], io)).toBe(2);
    expect(io.stderr).toContain('weft: unknown command "deploy"');
  });

  it("reports unknown options as usage errors (exit 2)", async () => {
    const io = captureIo(repoRoot);
    expect(await run(["gen", "--templat", "x.yaml"], io)).toBe(2);
    expect(io.stderr).toContain("Unknown option '--templat'");
    expect(io.stderr).toContain("Run `weft gen --help` for usage.");
  });

  it("runs as the `weft` executable", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(repoRoot, "packages/cli/bin/weft.js"),
      "--version",
    ]);
    expect(stdout).toMatch(/^weft \d+\.\d+\.\d+\n$/);
  });
});
