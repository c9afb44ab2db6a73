import type { RetryRefused } from "../src/call/client-call.ts";
import { abortError } from "../src/call/signal.ts";
import type { Instance } from "../src/discovery/registry.ts";
import type { Call, CallResult } from "../src/interceptor/call.ts";
import { Metadata } from "../src/metadata/metadata.ts";
import type { TransportNode } from "../src/transport/node.ts";
import { type Deferred, deferred } from "./deferred.ts";

/** A registry record for a fake node. */
export function instance(
  id: string,
  fields: { zone?: string; labels?: Record<string, string> } = {},
): Instance {
  return {
    id,
    services: ["test.Svc"],
    addresses: { weft: `${id}:1` },
    weight: 100,
    version: "",
    zone: fields.zone ?? "",
    labels: fields.labels ?? {},
    startedAt: 0,
  };
}

/** A unary result carrying `message`. */
export function answer(message: unknown): CallResult {
  return { stream: false, headers: new Metadata(), message, trailers: new Metadata() };
}

/**
 * A node without sockets that records every call. By default it answers with its address at once;
 * with `hold` set, each call waits for the test to settle it (and rejects when its signal aborts).
 */
export class FakeNode implements TransportNode {
  readonly address: string;
  instance: Instance | undefined;
  ready = true;
  backingOff = false;
  hold = false;
  /** When set, every call fails with it at once. */
  failWith: Error | undefined;
  readonly calls: { call: Call; result: Deferred<CallResult> }[] = [];

  constructor(address: string, record?: Instance) {
    this.address = address;
    this.instance = record;
  }

  connect(): Promise<unknown> {
    return Promise.resolve();
  }

  call(call: Call, _retry: RetryRefused | undefined, _attempt: number): Promise<CallResult> {
    const result = deferred<CallResult>();
    this.calls.push({ call, result });
    if (this.failWith !== undefined) return Promise.reject(this.failWith);
    if (!this.hold) return Promise.resolve(answer(this.address));
    call.signal.addEventListener("abort", () => result.reject(abortError(call.signal)), { once: true });
    return result.promise;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Fake nodes named by their addresses, each with an instance record of the same id. */
export function fakeNodes(...addresses: string[]): FakeNode[] {
  return addresses.map((a) => new FakeNode(a, instance(a)));
}
