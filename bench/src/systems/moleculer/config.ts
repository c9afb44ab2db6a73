import { type BrokerOptions, Transporters } from "moleculer";

export const SERVER_NODE_ID = "bench-server";
export const CLIENT_NODE_ID = "bench-client";

/**
 * Moleculer's TCP transporter advertises and dials a node's hostname or first interface address.
 * Pin both to loopback so that every byte of the bench stays on 127.0.0.1.
 */
class LoopbackTcpTransporter extends Transporters.TCP {
  override getNodeAddress(): string {
    return "127.0.0.1";
  }
}

/**
 * A broker on the TCP transporter with static peers (no UDP discovery), JSON serializer (the default)
 * and the optional machinery off: logging, metrics, tracing, validation.
 */
export function brokerOptions(
  nodeID: string,
  peers: string[],
): { options: BrokerOptions; port: () => number } {
  const transporter = new LoopbackTcpTransporter({
    udpDiscovery: false,
    port: 0,
    urls: peers.join(","),
    gossipPeriod: 1,
  });
  return {
    options: {
      nodeID,
      namespace: "weft-bench",
      transporter,
      serializer: "JSON",
      logger: false,
      metrics: false,
      tracing: false,
      validator: false,
      internalServices: false,
    },
    port: () => {
      const port = transporter.opts.port;
      if (typeof port !== "number" || port === 0) throw new Error("moleculer: TCP transporter has no port");
      return port;
    },
  };
}
