import { delimiter, join, resolve } from "node:path";
import type { Io } from "../src/index.ts";

export const repoRoot = resolve(import.meta.dirname, "../../..");

/** An `Io` that records what a command writes; the repository's node_modules/.bin is on PATH. */
export function captureIo(cwd: string): Io & { stdout: string; stderr: string } {
  const io = {
    cwd,
    env: { ...process.env, PATH: [join(repoRoot, "node_modules", ".bin"), process.env.PATH].join(delimiter) },
    stdout: "",
    stderr: "",
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
  };
  return io;
}
