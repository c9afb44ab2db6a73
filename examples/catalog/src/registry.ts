import { createLocalRegistry, parseTarget, type Registry } from "@weft/core";

/** The service every catalog server registers and every client looks up. */
export const SERVICE = "catalog.v1.Catalog";

/**
 * Opens the registry a URL names, as `weft ls` reads them: `local:///?dir=/path` (the local registry,
 * files in a shared directory, nothing to install) or `etcd://host:port[,host:port]` (loaded only
 * then, from `@weft/registry-etcd`). Registrations in the local registry outlive a killed process by
 * `ttlMs` (here 3,000 ms, so the demo's killed server leaves the registry quickly).
 */
export async function openRegistry(url: string): Promise<Registry> {
  const target = parseTarget(url);
  if (target.scheme === "local") {
    const dir = target.params.get("dir");
    return createLocalRegistry({ ttlMs: 3000, ...(dir !== null && { directory: dir }) });
  }
  if (target.scheme === "etcd") {
    const { createEtcdRegistry } = await import("@weft/registry-etcd");
    return createEtcdRegistry({ endpoints: target.authority.split(",").map((host) => `http://${host}`) });
  }
  throw new Error(`WEFT_REGISTRY: expected local:///?dir=… or etcd://host:port, got "${url}"`);
}

/** The registry URL with the service as its path: the target a transport follows. */
export function targetOf(url: string): string {
  const target = new URL(url);
  target.pathname = `/${SERVICE}`;
  return target.href;
}

/**
 * Resolves once the registry answers a read within `timeoutMs` (default 3,000); rejects with a
 * message saying what to do when it does not (etcd not running, wrong address).
 */
export async function ensureReachable(registry: Registry, url: string, timeoutMs = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([registry.list(SERVICE), timeout]);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new Error(
      `cannot reach the registry WEFT_REGISTRY=${url} (${why}). Start it (etcd: \`etcd\` listening on ` +
        "that address), or unset WEFT_REGISTRY to use a local registry in a temp directory.",
    );
  } finally {
    clearTimeout(timer);
  }
}
