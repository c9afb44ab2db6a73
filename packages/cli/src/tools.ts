import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, join } from "node:path";
import type { Io } from "./command.ts";

/** What a child process left behind. `code` is `undefined` when it could not start (`error` says why). */
export interface ToolResult {
  code: number | undefined;
  stdout: string;
  stderr: string;
  error?: Error;
}

/**
 * The environment tools run in: every `node_modules/.bin` from `cwd` upwards first (where npm puts
 * `protoc-gen-es`, `protoc-gen-weft`), then the directory of the Node running `weft`, so plugins with a
 * `#!/usr/bin/env node` line start under the same Node as this command, whatever the system one is.
 */
export function toolEnv(io: Io): Record<string, string | undefined> {
  const dirs: string[] = [];
  for (let dir = io.cwd; ; dir = dirname(dir)) {
    const bin = join(dir, "node_modules", ".bin");
    if (existsSync(bin)) dirs.push(bin);
    if (dirname(dir) === dir) break;
  }
  dirs.push(dirname(process.execPath));
  const path = io.env.PATH ?? io.env.Path;
  return { ...io.env, PATH: [...dirs, ...(path === undefined ? [] : [path])].join(delimiter) };
}

/** The `buf` launcher of the `@bufbuild/buf` package this CLI depends on. */
export function bufLauncher(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("@bufbuild/buf/package.json")), "bin", "buf");
}

export interface RunOptions {
  /** Forward the child's output to `io` as it arrives (besides collecting it). */
  stream?: boolean;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

/** Runs `command args…` to completion; never throws. */
export function runTool(
  command: string,
  args: readonly string[],
  io: Io,
  options: RunOptions = {},
): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? io.cwd,
      env: options.env ?? { ...io.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (options.stream) io.out(chunk);
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (options.stream) io.err(chunk);
    });
    child.on("error", (error) => resolve({ code: undefined, stdout, stderr, error }));
    child.on("close", (code, signal) =>
      resolve({ code: code ?? (signal === null ? 1 : 128), stdout, stderr }),
    );
  });
}

/** Runs the `buf` CLI (offline: Weft's templates use local plugins only) under this process's Node. */
export function runBuf(args: readonly string[], io: Io, options: RunOptions = {}): Promise<ToolResult> {
  return runTool(process.execPath, [bufLauncher(), ...args], io, { env: toolEnv(io), ...options });
}
