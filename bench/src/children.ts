/**
 * The orchestrator's side of its child processes (servers and clients forked with the same Node):
 * starting them, reading the JSON line they report, sampling a server over IPC, stopping them.
 */
import { type ChildProcess, fork } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { isRecord } from "./types.ts";

/**
 * Asks one server process for its figures over IPC (`{ type: "cpu" }`): resolves with its reply,
 * a `CpuMessage` (cumulative CPU time) that some servers extend with counters of their own.
 */
export function sampler(server: Child): () => Promise<Record<string, unknown>> {
  const replies: ((reply: Record<string, unknown>) => void)[] = [];
  server.process.on("message", (message: unknown) => {
    if (isRecord(message) && message.type === "cpu") replies.shift()?.(message);
  });
  return () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      if (!server.process.connected) {
        reject(new Error("server went away before its CPU was sampled"));
        return;
      }
      replies.push(resolve);
      server.process.send({ type: "cpu" });
    });
}

/** User + system CPU time, in µs, of a `sampler` reply. */
export function cpuUsOf(reply: Record<string, unknown>): number {
  return Number(reply.userUs) + Number(reply.systemUs);
}

/** The first stdout line of `child` that parses as a JSON object; rejects on exit or timeout first. */
export function readJsonLine(
  child: ChildProcess,
  timeoutMs: number,
  what: string,
): Promise<Record<string, unknown>> {
  const stdout = child.stdout;
  if (stdout === null) return Promise.reject(new Error(`${what}: no stdout`));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stdout });
    const done = (): void => {
      clearTimeout(timer);
      child.off("close", onExit);
      lines.close();
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      done();
      reject(new Error(`${what} exited (${signal ?? `code ${code}`}) before reporting`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what} reported nothing within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on("close", onExit);
    lines.on("line", (line) => {
      if (!line.startsWith("{")) return;
      try {
        const value: unknown = JSON.parse(line);
        if (isRecord(value)) {
          done();
          resolve(value);
        }
      } catch {
        // not ours; keep reading
      }
    });
  });
}

export interface Child {
  process: ChildProcess;
  /** Settles once the process has exited and its stdio and IPC channel are closed. */
  closed: Promise<unknown>;
}

export function startChild(script: string, args: string[]): Child {
  const child = fork(script, args, { stdio: ["ignore", "pipe", "inherit", "ipc"] });
  // A failed IPC send surfaces as the run's error elsewhere; keep it from crashing the orchestrator.
  child.on("error", () => {});
  return { process: child, closed: once(child, "close") };
}

/**
 * Asks a child to stop over IPC, kills it, or just waits for it to end; kills it anyway if it has
 * not ended within 5 s.
 */
export async function stopChild(child: Child, how: { type: "stop" } | "kill" | null): Promise<void> {
  if (how === "kill") child.process.kill("SIGKILL");
  else if (how !== null && child.process.connected) child.process.send(how);
  const timer = setTimeout(() => child.process.kill("SIGKILL"), 5000);
  await child.closed;
  clearTimeout(timer);
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
