import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { delimiter, dirname, join, resolve } from "node:path";

/** The repository root. */
export const repoRoot = resolve(import.meta.dirname, "../../..");

const bufLauncher = join(
  dirname(createRequire(import.meta.url).resolve("@bufbuild/buf/package.json")),
  "bin",
  "buf",
);

/**
 * Runs the `buf` CLI under this process's Node, with the repository's `node_modules/.bin` (the
 * protoc-gen-es and protoc-gen-weft executables) and this Node first on PATH, as `weft gen` does.
 */
export function buf(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const PATH = [join(repoRoot, "node_modules", ".bin"), dirname(process.execPath), process.env.PATH].join(
    delimiter,
  );
  return new Promise((done) => {
    execFile(
      process.execPath,
      [bufLauncher, ...args],
      { cwd, env: { ...process.env, PATH } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        done({ code, stdout, stderr });
      },
    );
  });
}
