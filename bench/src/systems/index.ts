import type { ConnectClient, StartServer, SystemName } from "../types.ts";

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
      return (await import("./weft/server.ts")).startServer;
  }
}

export async function loadClient(system: SystemName): Promise<ConnectClient> {
  switch (system) {
    case "raw":
      return (await import("./raw/client.ts")).connectClient;
    case "grpc":
      return (await import("./grpc/client.ts")).connectClient;
    case "moleculer":
      return (await import("./moleculer/client.ts")).connectClient;
    case "weft":
      return (await import("./weft/client.ts")).connectClient;
  }
}
