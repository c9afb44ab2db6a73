import { Code, type HandlerContext, protoService, Reason, type Server, WeftError } from "@weft/core";
import {
  type HealthCheckRequest,
  Health as HealthDesc,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "./gen/grpc/health/v1/health_pb.ts";

export type HealthStatus = "SERVING" | "NOT_SERVING";

/** The `grpc.health.v1.Health` service of one server. */
export interface Health {
  /**
   * Sets the status of a service (`""` is the whole server). Every service registered on the server
   * is `SERVING` by default; all are `NOT_SERVING` once the server begins draining, whatever is set.
   */
  setStatus(service: string, status: HealthStatus): void;
  /** The status a health check would report now: `undefined` for a service the server does not know. */
  status(service: string): HealthStatus | undefined;
}

/** The Weft service definition of `grpc.health.v1.Health`. */
export const HealthService = protoService(HealthDesc);

/**
 * Registers `grpc.health.v1.Health` (Check, List, Watch) on `server`, as an ordinary Weft service:
 * it is served over Weft TCP as well as over gRPC, through the same interceptors. It reflects the
 * server's real state: `SERVING` while it serves, `NOT_SERVING` from the moment shutdown begins
 * (Watch streams receive the change, then end so the drain is not held up by them).
 *
 * Over gRPC, gRPC-web and Connect, health checks are answered while the server drains, unlike other
 * calls, which are refused: a check that still reaches a draining server gets `NOT_SERVING`, not
 * `UNAVAILABLE`. Weft TCP refuses every new call once draining, health checks included: its clients
 * learn the server is going away from the GOAWAY itself.
 */
export function addHealth(server: Server): Health {
  const health = new HealthImpl(server);
  server.register(HealthService, {
    check: (req) => health.check(req),
    list: () => health.list(),
    watch: (req, ctx) => health.watch(req, ctx),
  });
  return health;
}

type Listener = () => void;

class HealthImpl implements Health {
  readonly #server: Server;
  readonly #overrides = new Map<string, HealthStatus>();
  readonly #listeners = new Set<Listener>();

  constructor(server: Server) {
    this.#server = server;
    server.onStateChange(() => this.#changed());
  }

  setStatus(service: string, status: HealthStatus): void {
    if (status !== "SERVING" && status !== "NOT_SERVING") {
      throw new TypeError(`health status must be "SERVING" or "NOT_SERVING", got ${String(status)}`);
    }
    if (this.#overrides.get(service) === status) return;
    this.#overrides.set(service, status);
    this.#changed();
  }

  status(service: string): HealthStatus | undefined {
    if (service !== "" && !this.#overrides.has(service) && !this.#services().has(service)) return undefined;
    if (this.#server.state !== "serving") return "NOT_SERVING";
    return this.#overrides.get(service) ?? "SERVING";
  }

  check(req: HealthCheckRequest): { status: ServingStatus } {
    const status = this.status(req.service);
    if (status === undefined) {
      throw new WeftError(Code.NOT_FOUND, `unknown service ${req.service}`, {
        reason: Reason.UNKNOWN_SERVICE,
      });
    }
    return { status: ServingStatus[status] };
  }

  list(): { statuses: Record<string, { status: ServingStatus }> } {
    const statuses: Record<string, { status: ServingStatus }> = {};
    for (const name of ["", ...this.#services(), ...this.#overrides.keys()]) {
      const s = this.status(name);
      if (s !== undefined) statuses[name] = { status: ServingStatus[s] };
    }
    return { statuses };
  }

  async *watch(req: HealthCheckRequest, ctx: HandlerContext): AsyncGenerator<{ status: ServingStatus }> {
    let wake: (() => void) | undefined;
    let dirty = false;
    const listener = () => {
      dirty = true;
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onAbort = () => listener();
    this.#listeners.add(listener);
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    try {
      let last: ServingStatus | undefined;
      for (;;) {
        dirty = false;
        const s = this.status(req.service);
        const current = s === undefined ? ServingStatus.SERVICE_UNKNOWN : ServingStatus[s];
        if (current !== last) {
          last = current;
          yield { status: current };
        }
        if (ctx.signal.aborted) return;
        // draining: the change is out, end the stream so it does not hold up the drain
        if (this.#server.state !== "serving") return;
        if (!dirty) await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      this.#listeners.delete(listener);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  }

  #services(): Set<string> {
    const names = new Set<string>();
    for (const info of this.#server.methods.values()) names.add(info.service.typeName);
    return names;
  }

  #changed(): void {
    for (const l of [...this.#listeners]) l();
  }
}
