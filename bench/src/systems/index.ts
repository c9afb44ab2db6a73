import type { ConnectClient, StartServer, SystemName } from "../types.ts";
import type { Observed } from "./weft-observed/instruments.ts";

/** The `weft` echo with observability installed: what each system installs on both sides. */
const OBSERVED = {
  "weft-metrics": "metrics",
  "weft-trace-noop": "trace-noop",
  "weft-trace-1pct": "trace-1pct",
  "weft-trace-100pct": "trace-100pct",
  "weft-observed": "all",
} as const satisfies Partial<Record<SystemName, Observed>>;

/** Loaded lazily, so a system whose dependency is missing fails only when it is run. */
export async function loadServer(system: SystemName): Promise<StartServer> {
  switch (system) {
    case "raw":
      return (await import("./raw/server.ts")).startServer;
    case "grpc":
      return (await import("./grpc/server.ts")).startServer;
    case "moleculer":
      return (await import("./moleculer/server.ts")).startServer;
    case "weft":
    case "weft-chain":
    case "weft-spin1":
    case "weft-deadline":
      return (await import("./weft/server.ts")).startServer;
    case "weft-p2c3":
    case "weft-static3":
      return (await import("./weft-p2c3/server.ts")).startServer;
    case "weft-grpc":
      return (await import("./weft-grpc/server.ts")).startServer;
    case "http":
      return (await import("./http/server.ts")).startServer;
    case "weft-rest":
      return (await import("./weft-rest/server.ts")).startServer;
    case "weft-metrics":
    case "weft-trace-noop":
    case "weft-trace-1pct":
    case "weft-trace-100pct":
    case "weft-observed":
      return (await import("./weft-observed/server.ts")).serverFor(OBSERVED[system]);
  }
}

/** Systems compared with an anchor share the anchor's client: only the server differs. */
export async function loadClient(system: SystemName): Promise<ConnectClient> {
  switch (system) {
    case "raw":
      return (await import("./raw/client.ts")).connectClient;
    case "grpc":
    case "weft-grpc":
      return (await import("./grpc/client.ts")).connectClient;
    case "moleculer":
      return (await import("./moleculer/client.ts")).connectClient;
    case "weft":
      return (await import("./weft/client.ts")).connectClient;
    case "weft-chain":
      return (await import("./weft-chain/client.ts")).connectClient;
    case "weft-spin1":
      return (await import("./weft-spin1/client.ts")).connectClient;
    case "weft-deadline":
      return (await import("./weft-deadline/client.ts")).connectClient;
    case "weft-p2c3":
      return (await import("./weft-p2c3/client.ts")).connectClient;
    case "weft-static3":
      return (await import("./weft-static3/client.ts")).connectClient;
    case "http":
    case "weft-rest":
      return (await import("./http/client.ts")).connectClient;
    case "weft-metrics":
    case "weft-trace-noop":
    case "weft-trace-1pct":
    case "weft-trace-100pct":
    case "weft-observed":
      return (await import("./weft-observed/client.ts")).clientFor(OBSERVED[system]);
  }
}
