import { Readable } from "node:stream";
import { type Context, ServiceBroker } from "moleculer";
import { type BenchServer, isRecord } from "../../types.ts";
import { brokerOptions, SERVER_NODE_ID } from "./config.ts";

export async function startServer(): Promise<BenchServer> {
  const { options, port } = brokerOptions(SERVER_NODE_ID, []);
  const broker = new ServiceBroker(options);
  broker.createService({
    name: "echo",
    actions: {
      echo: (ctx: Context<unknown>) => ctx.params,
      stream: (ctx: Context<unknown>) => messageStream(ctx.params),
    },
  });
  await broker.start();
  return { port: port(), close: () => broker.stop() };
}

/**
 * A byte stream of `count` chunks, each `data` as bytes. Moleculer's transit sends every chunk the
 * stream emits as its own RESPONSE packet and waits for it to be published before the next one.
 */
function messageStream(params: unknown): Readable {
  if (!isRecord(params) || typeof params.count !== "number" || typeof params.data !== "string") {
    throw new Error("moleculer: stream expects { count, data }");
  }
  const chunk = Buffer.from(params.data);
  let left = params.count;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      left--;
      this.push(chunk);
    },
  });
}
