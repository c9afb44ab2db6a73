import { afterEach, describe, expect, it } from "vitest";
import { Cluster } from "../../src/cluster/cluster.ts";
import { stressRoute } from "../../src/cluster/routing.ts";
import { createClient, createServer, messageType, type Server, type Transport } from "../../src/index.ts";
import { defineService, unary } from "../../src/service/service.ts";
import { memoryDialer } from "../../src/transport/memory-transport.ts";
import type { TransportNode } from "../../src/transport/node.ts";
import { TcpNode, tcpNodeSettings } from "../../src/transport/tcp-node.ts";
import { instance } from "../fake-node.ts";

const Front = defineService("test.Front", {
  hop: unary(messageType<Record<string, never>>(), messageType<{ front: string; back: string }>()),
});
const Back = defineService("test.Back", {
  where: unary(messageType<Record<string, never>>(), messageType<{ back: string }>()),
});

const servers: Server[] = [];
const transports: Transport[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  await Promise.all(servers.splice(0).map((s) => s.shutdown({ timeoutMs: 1000 })));
});

/** A cluster over in-memory servers, each node carrying a registry record labelled stress or not. */
function stressCluster(members: { name: string; server: Server; stress: boolean }[]): Transport {
  const nodes = members.map(({ name, server, stress }) => {
    const node = new TcpNode(`${name}:1`, tcpNodeSettings({ keepalive: false }, memoryDialer(server)));
    (node as TransportNode).instance = instance(name, { labels: stress ? { stress: "true" } : {} });
    return node;
  });
  const cluster = new Cluster(nodes, { routing: [stressRoute()] });
  transports.push(cluster);
  return cluster;
}

function backServer(name: string): Server {
  const server = createServer({ onError: () => {} });
  server.register(Back, { where: () => ({ back: name }) });
  servers.push(server);
  return server;
}

function frontServer(name: string, back: Transport): Server {
  const server = createServer({ onError: () => {} });
  const backClient = createClient(Back, back);
  // no header handling here: the flag travels in the call context
  server.register(Front, { hop: async () => ({ front: name, back: (await backClient.where({})).back }) });
  servers.push(server);
  return server;
}

describe("full-link stress testing", () => {
  it("a stress flag set at the edge routes both hops to stress instances; normal traffic never reaches them", async () => {
    const back = stressCluster([
      { name: "back-normal", server: backServer("back-normal"), stress: false },
      { name: "back-stress", server: backServer("back-stress"), stress: true },
    ]);
    const front = stressCluster([
      { name: "front-normal", server: frontServer("front-normal", back), stress: false },
      { name: "front-stress", server: frontServer("front-stress", back), stress: true },
    ]);
    const edge = createClient(Front, front);
    for (let i = 0; i < 4; i++) {
      expect(await edge.hop({}, { headers: { "weft-ctx-stress": "1" } })).toEqual({
        front: "front-stress",
        back: "back-stress",
      });
      expect(await edge.hop({})).toEqual({ front: "front-normal", back: "back-normal" });
    }
  });
});
