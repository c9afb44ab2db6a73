import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { outboxScene } from "./outbox-scene.ts";

describe("the demo's outbox scene (npm run demo -- --postgres)", () => {
  it("books each committed order once, none for the rolled-back one, and skips the redelivered copies", async () => {
    execFileSync("bash", [fileURLToPath(new URL("../../../scripts/ensure-postgres.sh", import.meta.url))], {
      stdio: "inherit",
    });
    const lines: string[] = [];
    expect(await outboxScene((line) => void lines.push(line))).toBe(true);
    expect(lines.join("\n")).toMatch(/o-2 and OrderCreated .* rollback/);
    expect(lines.join("\n")).toContain("relay: published 2 message(s)");
    expect(lines.join("\n")).toContain("accounting booked 2 order(s)");
    expect(lines.join("\n")).toContain("2 skipped by the inbox, ledger still 2");
  });
});
