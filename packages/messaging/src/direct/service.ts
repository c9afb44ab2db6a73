/*
 * The wire of the direct broker: a small Weft RPC service every direct broker serves on its one port.
 * `deliver` carries one message to one subscription (or inbox) of the process and answers once that
 * subscription took it; `subscriptions` streams the process's subscription set to a peer, the whole set
 * again on every change. Both messages travel as MessagePack; what arrives is checked before use.
 */
import { defineService, messageType, serverStreaming, unary } from "@weft/core";
import { type Envelope, envelopeOf, malformedMessage, toHeaders } from "../envelope.ts";

/** One message for one subscription or inbox of the receiving process. */
export interface DeliverRequest {
  /** The subscription's id (`s…`) or the inbox's (`i…`) in the receiving process. */
  readonly to: string;
  readonly destination: string;
  /** The envelope's fields and headers, as `toHeaders` maps them. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array;
  /** How long the subscription may keep the message waiting for a free slot, in milliseconds. */
  readonly within: number;
  /** Which delivery this is: above 1 for a message another member of the group handed over. Default 1. */
  readonly attempt?: number;
}

/**
 * What became of a delivery: `accepted` by the subscription (or inbox); not taken because it is
 * `gone` (closed, or its sender gave up); or not taken because no slot freed up `within` its time.
 */
export type Acceptance = "accepted" | "gone" | "timeout";

export interface DeliverResponse {
  readonly status: Acceptance;
}

/** One subscription as a process advertises it to its peers. */
export interface AdvertisedSubscription {
  readonly id: string;
  /** A destination or a pattern (`orders.*`). */
  readonly destination: string;
  /** `null`: a private subscription. */
  readonly group: string | null;
  /** The destination's partition count, or `null`. */
  readonly partitions: number | null;
}

/** A process's whole subscription set, pushed again on every change. */
export interface SubscriptionSet {
  /** Counts the changes of the set: a follower confirms it has applied this one (`applied`). */
  readonly version: number;
  readonly subscriptions: readonly AdvertisedSubscription[];
}

/** Who follows a process's subscriptions: the `host:port` its own peers reach it at. */
export interface Follower {
  readonly from: string;
}

/** A follower has applied `version` of the set: a subscription made by then is routed to. */
export interface Applied {
  readonly from: string;
  readonly version: number;
}

const wire = <T>() => messageType<T>({ serializers: ["msgpack"] });

/**
 * The service every direct broker serves, and the name it registers under: `deliver` a message,
 * follow the `subscriptions` (the whole set, again on every change), confirm a set was `applied`.
 */
export const DirectService = defineService("weft.messaging.v1.Direct", {
  deliver: unary(wire<DeliverRequest>(), wire<DeliverResponse>()),
  subscriptions: serverStreaming(wire<Follower>(), wire<SubscriptionSet>()),
  applied: unary(wire<Applied>(), wire<Record<string, never>>()),
});

/** The request that carries `envelope` to `to`. */
export function deliverRequest(
  to: string,
  envelope: Envelope,
  within: number,
  attempt: number,
): DeliverRequest {
  const { destination, body } = envelope;
  return { to, destination, headers: toHeaders(envelope), body, within, attempt };
}

/** A deliver request's `attempt`, checked (`MALFORMED_MESSAGE` unless an integer ≥ 1); 1 when absent. */
export function attemptOf(request: DeliverRequest): number {
  const attempt = (request as Partial<DeliverRequest>).attempt ?? 1;
  if (!Number.isSafeInteger(attempt) || attempt < 1)
    throw malformedMessage("a deliver request's attempt must be an integer ≥ 1");
  return attempt;
}

/** The longest `within` a receiver honours: an hour. */
const MAX_WITHIN_MS = 3_600_000;

/** A deliver request's `within`, checked (`MALFORMED_MESSAGE` unless a number ≥ 0), at most an hour. */
export function withinOf(request: DeliverRequest): number {
  const within = (request as Partial<DeliverRequest>).within;
  if (typeof within !== "number" || !(within >= 0))
    throw malformedMessage("a deliver request's within must be ≥ 0");
  return Math.min(within, MAX_WITHIN_MS);
}

/**
 * The envelope a `deliver` request carries. Anything but strings where strings belong and bytes for the
 * body is refused (`INVALID_ARGUMENT`/`MALFORMED_MESSAGE`); reserved headers that do not parse come back
 * as `malformed` (`envelopeOf`), for the messenger to dead-letter.
 */
export function deliveredEnvelope(request: DeliverRequest): ReturnType<typeof envelopeOf> {
  const { to, destination, headers, body } = request as Partial<DeliverRequest>;
  if (typeof to !== "string" || typeof destination !== "string" || !(body instanceof Uint8Array))
    throw malformedMessage("a deliver request needs to, destination and body");
  if (typeof headers !== "object" || headers === null || Array.isArray(headers))
    throw malformedMessage("a deliver request's headers must be a map");
  for (const value of Object.values(headers))
    if (typeof value !== "string")
      throw malformedMessage("a deliver request's header values must be strings");
  return envelopeOf(destination, headers, body);
}

/** The subscriptions a peer advertised, checked; a malformed entry is dropped. */
export function advertisedOf(set: SubscriptionSet): AdvertisedSubscription[] {
  const list = (set as Partial<SubscriptionSet>).subscriptions;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (s: Partial<AdvertisedSubscription>) =>
      typeof s?.id === "string" &&
      typeof s.destination === "string" &&
      (s.group === null || typeof s.group === "string") &&
      (s.partitions === null || (Number.isSafeInteger(s.partitions) && (s.partitions as number) > 0)),
  );
}
