import { type Discovery, type Instance, type InstanceChange, openDiscovery, parseTarget } from "@weft/core";
import { pause } from "@weft/core/internal";
import { etcdScheme } from "@weft/registry-etcd";
import { type Command, Exit, type ExitCode, type Io, parseCommandArgs, UsageError } from "../command.ts";

/** How often `--watch` without a service looks for services that appeared. */
const SERVICES_POLL_MS = 2_000;
/** How long `--watch` waits before watching a service again after its watch failed. */
const REWATCH_MS = 1_000;

const help = `Usage: weft ls <registry-url> [service] [--json] [--watch]

Lists the services a registry knows (those with at least one live instance) and each instance: id,
addresses per protocol, weight, version, zone, labels and age.

Registry URLs: local:///?dir=/path/to/dir (the local registry; default directory under the OS temp
dir), etcd://host:port[,host:port]/?prefix=/weft/services. A service in the URL's path
(local:///catalog.v1.Catalog) is the same as giving it as the second argument.

Options:
  --json       one JSON document: { services: { <name>: [instances] } }
  --watch      after the listing, print every change as it happens, until Ctrl-C:
               "<ISO time> + <service> <instance>" added, "~" updated, "-" removed
               (with --json: one JSON object per line). Without a service, services that
               appear later are watched too (checked every ${SERVICES_POLL_MS / 1000} s).
  -h, --help   show this help

Exit codes: 0 done, 2 usage error or the registry could not be read.
`;

/** An age as people read it: `12s`, `3m`, `2h`, `4d`. */
export function humanAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

function describe(instance: Instance, now: number): string {
  const addresses = Object.entries(instance.addresses)
    .map(([p, a]) => `${p}=${a}`)
    .join(",");
  const labels = Object.entries(instance.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return [
    instance.id,
    addresses,
    `weight=${instance.weight}`,
    `version=${instance.version || "-"}`,
    `zone=${instance.zone || "-"}`,
    `labels=${labels || "-"}`,
    `age=${humanAge(now - instance.startedAt)}`,
  ].join("  ");
}

export const ls: Command = {
  name: "ls",
  summary: "list the services and instances of a registry (local://, etcd://), or --watch them",
  help,
  async run(args, io) {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        json: { type: "boolean" },
        watch: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      true,
    );
    if (values.help) {
      io.out(help);
      return Exit.OK;
    }
    const [url, named, ...extra] = positionals;
    if (url === undefined) throw new UsageError("a registry URL is required");
    if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
    let target: ReturnType<typeof parseTarget>;
    let opened: ReturnType<typeof openDiscovery>;
    try {
      target = parseTarget(url);
      opened = openDiscovery(target, { etcd: etcdScheme });
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
    const service = named ?? (target.endpoint || undefined);
    try {
      return await list(opened.discovery, service, values.json === true, values.watch === true, io);
    } finally {
      await opened.close();
    }
  },
};

async function servicesOf(discovery: Discovery, service: string | undefined): Promise<string[]> {
  if (service !== undefined) return [service];
  if (discovery.services === undefined)
    throw new UsageError("this registry cannot list its services: name one");
  return discovery.services();
}

async function list(
  discovery: Discovery,
  service: string | undefined,
  json: boolean,
  watch: boolean,
  io: Io,
): Promise<ExitCode> {
  const names = await servicesOf(discovery, service);
  const all: Record<string, Instance[]> = {};
  for (const name of names) all[name] = (await discovery.list(name)).sort((a, b) => a.id.localeCompare(b.id));
  if (json) io.out(`${JSON.stringify({ services: all }, null, 2)}\n`);
  else {
    const now = Date.now();
    if (names.length === 0) io.out("no services\n");
    for (const name of names) {
      io.out(`${name}  (${all[name]?.length ?? 0} instances)\n`);
      for (const instance of all[name] ?? []) io.out(`  ${describe(instance, now)}\n`);
    }
  }
  if (!watch) return Exit.OK;
  await watchAll(discovery, service, names, json, io);
  return Exit.OK;
}

/** Prints every change of the services until SIGINT or SIGTERM. */
async function watchAll(
  discovery: Discovery,
  service: string | undefined,
  initial: readonly string[],
  json: boolean,
  io: Io,
): Promise<void> {
  const watches = new Map<string, AsyncIterator<unknown>>();
  const done: Promise<void>[] = [];
  const print = (kind: "added" | "updated" | "removed", name: string, instance: Instance) => {
    const at = new Date().toISOString();
    if (json) io.out(`${JSON.stringify({ at, change: kind, service: name, instance })}\n`);
    else {
      const mark = kind === "added" ? "+" : kind === "updated" ? "~" : "-";
      io.out(`${at} ${mark} ${name} ${describe(instance, Date.now())}\n`);
    }
  };
  /** Aborted at SIGINT or SIGTERM: ends the waits before watching again too. */
  const stop = new AbortController();
  /** Services whose watch failed and has not delivered since. */
  const failing = new Set<string>();
  const follow = (name: string, isNew: boolean) => {
    if (watches.has(name)) return;
    const iterator = discovery.watch(name)[Symbol.asyncIterator]();
    watches.set(name, iterator);
    done.push(
      (async () => {
        let first = true;
        for (;;) {
          let item: IteratorResult<InstanceChange>;
          try {
            item = await iterator.next();
          } catch (e) {
            // the registry is unreachable (an etcd outage): say so once, watch again every second; the
            // set a re-watch starts with is printed whole, as `+` lines
            if (!failing.has(name))
              io.err(`weft ls: watching ${name} failed: ${e instanceof Error ? e.message : String(e)}\n`);
            failing.add(name);
            watches.delete(name);
            // ref'd: while every watch is failing, this wait is what keeps the command running
            if (await pause(REWATCH_MS, stop.signal, { ref: true })) follow(name, true);
            return;
          }
          if (failing.delete(name)) io.err(`weft ls: watching ${name} again\n`);
          if (item.done === true) return;
          // the first item is the set already listed, unless the service appeared while watching
          if (first && !isNew) {
            first = false;
            continue;
          }
          first = false;
          for (const kind of ["added", "updated", "removed"] as const)
            for (const instance of item.value[kind]) print(kind, name, instance);
        }
      })(),
    );
  };
  for (const name of initial) follow(name, false);
  const poll =
    service === undefined
      ? setInterval(() => {
          discovery.services?.().then(
            (names) => {
              for (const name of names) follow(name, true);
            },
            (e: unknown) => io.err(`weft ls: ${e instanceof Error ? e.message : String(e)}\n`),
          );
        }, SERVICES_POLL_MS)
      : undefined;
  io.out(json ? "" : "watching; Ctrl-C to stop\n");
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  stop.abort();
  clearInterval(poll);
  for (const iterator of watches.values()) await iterator.return?.();
  await Promise.all(done);
}
