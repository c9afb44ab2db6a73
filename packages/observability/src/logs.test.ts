/**
 * The pino logger inside real calls (a server and client over the in-memory transport): lines
 * carry the server span's trace and span ids, the service and the method; without a context
 * manager, the inbound traceparent's; the access log; levels from the environment.
 */
import { context, propagation } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import {
  Code,
  ConfigError,
  createClient,
  createMemoryTransport,
  createServer,
  defineService,
  type Interceptor,
  messageType,
  unary,
  WeftError,
} from "@weft/core";
import { afterEach, describe, expect, it } from "vitest";
import { accessLog, createLogger, logLevel, tracing } from "./index.ts";

const Svc = defineService("shop.Orders", { place: unary(messageType<string>(), messageType<string>()) });

/** A pino destination keeping the parsed lines. */
function lines() {
  const out: Record<string, unknown>[] = [];
  return { out, destination: { write: (s: string) => void out.push(JSON.parse(s)) } };
}

async function serve(
  interceptors: { server: Interceptor[]; client: Interceptor[] },
  log: ReturnType<typeof createLogger>,
) {
  const server = createServer({ interceptors: interceptors.server, onError: () => {} });
  server.register(Svc, {
    place: async (sku) => {
      log.info({ sku }, "placing");
      if (sku === "none") throw new WeftError(Code.NOT_FOUND, "no such item");
      return sku;
    },
  });
  const transport = createMemoryTransport(server);
  const client = createClient(Svc, transport, { interceptors: interceptors.client });
  return {
    client,
    close: async () => {
      await transport.close();
      await server.shutdown();
    },
  };
}

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

afterEach(() => {
  context.disable();
  propagation.disable();
  exporter.reset();
});

describe("createLogger()", () => {
  it("puts the handler's span, service and method on every line written inside a call", async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    const { out, destination } = lines();
    const log = createLogger({ destination, level: "info" });
    const t = tracing({ tracerProvider: provider });
    const { client, close } = await serve({ server: [t.server], client: [t.client] }, log);
    await client.place("A-1");
    log.info("outside");
    await close();

    const server = exporter.getFinishedSpans().find((s) => s.kind === 1)!; // SERVER
    const line = out.find((l) => l.msg === "placing")!;
    expect(line).toMatchObject({
      sku: "A-1",
      service: "shop.Orders",
      method: "place",
      trace_id: server.spanContext().traceId,
      span_id: server.spanContext().spanId,
    });
    const outside = out.find((l) => l.msg === "outside")!;
    expect(outside).not.toHaveProperty("trace_id");
    expect(outside).not.toHaveProperty("service");
  });

  it("without a context manager, takes the ids from the call's inbound traceparent", async () => {
    const { out, destination } = lines();
    const log = createLogger({ destination });
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const parent = "b7ad6b7169203331";
    const tagged: Interceptor = (next) => (call) => {
      call.headers.set("traceparent", `00-${traceId}-${parent}-01`);
      return next(call);
    };
    const { client, close } = await serve({ server: [], client: [tagged] }, log);
    await client.place("B-2");
    await close();
    expect(out.find((l) => l.sku === "B-2")).toMatchObject({
      trace_id: traceId,
      span_id: parent,
      service: "shop.Orders",
      method: "place",
    });
  });

  it("binds the component and takes its level from WEFT_LOG, else WEFT_LOG_LEVEL", () => {
    const env = { WEFT_LOG: "core=debug, grpc=warn", WEFT_LOG_LEVEL: "error" };
    expect(logLevel("core", env)).toBe("debug");
    expect(logLevel("grpc", env)).toBe("warn");
    expect(logLevel("http", env)).toBe("error");
    expect(logLevel("http", { WEFT_LOG: "debug,grpc=warn" })).toBe("debug");
    expect(logLevel(undefined, {})).toBeUndefined();
    expect(() => logLevel("core", { WEFT_LOG: "core=loud" })).toThrow(ConfigError);
    expect(() => logLevel("core", { WEFT_LOG_LEVEL: "loud" })).toThrow(/WEFT_LOG_LEVEL/);

    const { out, destination } = lines();
    const grpc = createLogger({ component: "grpc", env, destination });
    expect(grpc.level).toBe("warn");
    grpc.info("dropped");
    grpc.warn("kept");
    expect(out).toEqual([expect.objectContaining({ component: "grpc", msg: "kept" })]);
    expect(createLogger({ env: {}, destination }).level).toBe("info");
  });
});

describe("accessLog()", () => {
  it("writes one line per call with side, peer, method, code and duration", async () => {
    const { out, destination } = lines();
    const log = createLogger({ destination });
    const { client, close } = await serve(
      { server: [accessLog(log)], client: [] },
      createLogger({ level: "silent" }),
    );
    await client.place("A-1");
    await expect(client.place("none")).rejects.toThrow();
    await close();
    const calls = out.filter((l) => l.msg === "call");
    expect(calls).toHaveLength(2);
    expect(calls[0]).toMatchObject({
      side: "server",
      protocol: "weft",
      service: "shop.Orders",
      method: "place",
      code: "OK",
    });
    expect(calls[1]).toMatchObject({ code: "NOT_FOUND" });
    expect(typeof calls[0]!.duration_ms).toBe("number");
    expect(() => accessLog({} as never)).toThrow(/logger/);
  });
});
