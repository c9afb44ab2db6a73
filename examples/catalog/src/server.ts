import { Code, createServer, type Interceptor, WeftError } from "@weft/core";
import { Catalog, type Item } from "./catalog.ts";

const items = new Map<string, Item>([
  ["A-100", { sku: "A-100", name: "Loom shuttle", priceCents: 1250 }],
  ["B-200", { sku: "B-200", name: "Warp thread (1 km)", priceCents: 899 }],
]);
const auditLog: string[] = [];

/** A server interceptor: counts calls per method, visible in the `x-served-calls` response header. */
const calls = new Map<string, number>();
const counting: Interceptor = (next) => async (call) => {
  const n = (calls.get(call.method.path) ?? 0) + 1;
  calls.set(call.method.path, n);
  const result = await next(call);
  result.headers.set("x-served-calls", String(n));
  return result;
};

const server = createServer({ interceptors: [counting] });
server.register(Catalog, {
  lookup({ sku }) {
    const item = items.get(sku);
    if (item === undefined) {
      throw new WeftError(Code.NOT_FOUND, `no item ${sku}`, {
        reason: "ITEM_NOT_FOUND",
        details: [{ type: "catalog.v1.Missing", value: { sku } }],
      });
    }
    return item;
  },
  async *watchPrices({ sku, ticks }, ctx) {
    const base = items.get(sku)?.priceCents ?? 1000;
    for (let seq = 1; seq <= ticks && !ctx.signal.aborted; seq++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      yield { sku, seq, priceCents: base + Math.round(Math.sin(seq) * 50) };
    }
  },
  async importItems(stream) {
    let imported = 0;
    for await (const item of stream) {
      items.set(item.sku, item);
      imported++;
    }
    return { imported };
  },
  async *quote(requests) {
    for await (const { sku, quantity } of requests) {
      const unit = items.get(sku)?.priceCents ?? 0;
      const discount = quantity >= 10 ? 0.9 : 1;
      yield { sku, quantity, totalCents: Math.round(unit * quantity * discount) };
    }
  },
  audit(event) {
    auditLog.push(`${event.actor} ${event.action}`);
    process.stdout.write(`[server] audit recorded: ${event.actor} ${event.action} (total ${auditLog.length})\n`);
  },
});

const port = Number(process.env.PORT ?? 0);
const address = await server.listen({ host: "127.0.0.1", port });
process.stdout.write(`LISTENING ${address.port}\n`);

const stop = async () => {
  const { cancelled } = await server.shutdown({ timeoutMs: 2000 });
  process.stdout.write(`[server] shut down gracefully (${cancelled} calls cancelled)\n`);
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
