import { createTcpTransport } from "@weft/core";
import type { ConnectClient } from "../../types.ts";
import { echoClient } from "../weft/client.ts";
import { instrumentsFor, type Observed } from "./instruments.ts";

/** The `weft` echo client with `variant`'s interceptors (and the transport's telemetry) installed. */
export function clientFor(variant: Observed): ConnectClient {
  return (port, payloadBytes) => {
    const { interceptors, telemetry } = instrumentsFor(variant, "client");
    const address = `127.0.0.1:${port}`;
    const transport = createTcpTransport(telemetry === undefined ? { address } : { address, telemetry });
    return Promise.resolve(echoClient(transport, payloadBytes, { interceptors }));
  };
}
