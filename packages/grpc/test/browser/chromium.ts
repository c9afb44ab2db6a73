/**
 * A headless Chromium driven over the DevTools protocol, for tests that need a real browser (CORS,
 * fetch of gRPC-web and Connect). Debian's `/usr/bin/chromium`, installed by
 * `scripts/ensure-chromium.sh` when missing; a fresh profile per launch, removed on close.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CHROMIUM = "/usr/bin/chromium";
const ENSURE = fileURLToPath(new URL("../../../../scripts/ensure-chromium.sh", import.meta.url));

/** Installs Chromium from Debian's packages if it is missing (root only; a no-op when present). */
export function ensureChromium(): void {
  execFileSync("bash", [ENSURE], { stdio: ["ignore", "inherit", "inherit"] });
}

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--remote-debugging-port=0",
];

export interface Browser {
  /** Opens `url` in a new tab, waits for its load event, evaluates `expression` there (awaiting a promise) and returns its JSON value. */
  evaluateAt(url: string, expression: string): Promise<unknown>;
  close(): Promise<void>;
}

interface Pending {
  resolve(result: Record<string, unknown>): void;
  reject(error: Error): void;
}

export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "weft-chromium-"));
  const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${profile}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let ws: WebSocket;
  try {
    ws = await openSocket(await devtoolsUrl(child));
  } catch (e) {
    child.kill("SIGKILL");
    rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  let nextId = 1;
  const pending = new Map<number, Pending>();
  const listeners = new Set<(method: string, sessionId: string | undefined) => void>();
  ws.addEventListener("message", (event) => {
    const msg = JSON.parse(String(event.data)) as {
      id?: number;
      result?: Record<string, unknown>;
      error?: { message: string };
      method?: string;
      sessionId?: string;
    };
    if (msg.id !== undefined) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error !== undefined) p?.reject(new Error(msg.error.message));
      else p?.resolve(msg.result ?? {});
    } else if (msg.method !== undefined) {
      for (const l of listeners) l(msg.method, msg.sessionId);
    }
  });
  const send = (method: string, params: object = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId === undefined ? {} : { sessionId }) }));
    });
  const event = (method: string, sessionId: string) =>
    new Promise<void>((resolve) => {
      const l = (m: string, s: string | undefined) => {
        if (m === method && s === sessionId) {
          listeners.delete(l);
          resolve();
        }
      };
      listeners.add(l);
    });

  return {
    async evaluateAt(url, expression) {
      const { targetId } = (await send("Target.createTarget", { url: "about:blank" })) as {
        targetId: string;
      };
      const { sessionId } = (await send("Target.attachToTarget", { targetId, flatten: true })) as {
        sessionId: string;
      };
      try {
        await send("Page.enable", {}, sessionId);
        const loaded = event("Page.loadEventFired", sessionId);
        await send("Page.navigate", { url }, sessionId);
        await loaded;
        const out = (await send(
          "Runtime.evaluate",
          { expression, awaitPromise: true, returnByValue: true },
          sessionId,
        )) as {
          result: { value?: unknown };
          exceptionDetails?: { text: string; exception?: { description?: string } };
        };
        if (out.exceptionDetails !== undefined) {
          throw new Error(out.exceptionDetails.exception?.description ?? out.exceptionDetails.text);
        }
        return out.result.value;
      } finally {
        await send("Target.closeTarget", { targetId }).catch(() => {});
      }
    },
    async close() {
      await send("Browser.close").catch(() => {});
      ws.close();
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** The browser's DevTools WebSocket URL, which Chromium prints on stderr once it listens. */
function devtoolsUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = "";
    const onData = (chunk: Buffer) => {
      err += chunk.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m !== null) {
        child.stderr?.off("data", onData);
        child.stderr?.resume();
        resolve(m[1]!);
      }
    };
    child.stderr?.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`chromium exited (${code}) before listening: ${err.slice(-2000)}`)),
    );
    child.once("error", reject);
  });
}

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.addEventListener("open", () => resolve(ws), { once: true });
    ws.addEventListener("error", () => reject(new Error(`cannot open ${url}`)), { once: true });
  });
}
