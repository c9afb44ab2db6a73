/*
 * Where a message published on the direct broker goes, decided by the publisher: every subscription
 * it knows of (its own and those its peers advertise) whose pattern matches the destination, grouped
 * into targets: one per queue group (the message goes to one of its members, whichever process they
 * live in) and one per private subscription.
 */
import type { BalancerNode } from "@weft/core";
import { matches } from "../destination.ts";
import type { AdvertisedSubscription } from "./service.ts";

/** One subscription somewhere, as a balancer sees it. */
export interface Member extends BalancerNode {
  /** `<peer>/<subscription id>`: unique across processes, and the point a consistent hash places. */
  readonly address: string;
  /** The `host:port` of the process that holds it. */
  readonly peer: string;
  readonly subscription: AdvertisedSubscription;
  readonly backingOff: false;
}

/** Who gets a copy: one member of a group, or one private subscription (`group` undefined, one member). */
export interface Target {
  readonly group: string | undefined;
  /** Sorted by address, so every publisher sees a group's members in the same order. */
  readonly members: readonly Member[];
}

/** The subscriptions of each process: its `host:port` and what it advertises. */
export type Advertised = Iterable<readonly [peer: string, subscriptions: readonly AdvertisedSubscription[]]>;

/** The targets of a message to `destination`. */
export function routeOf(destination: string, advertised: Advertised): Target[] {
  const groups = new Map<string, Member[]>();
  const targets: Target[] = [];
  for (const [peer, subscriptions] of advertised) {
    for (const subscription of subscriptions) {
      if (!matchesSubscription(subscription, destination)) continue;
      const member: Member = {
        address: `${peer}/${subscription.id}`,
        peer,
        subscription,
        backingOff: false,
      };
      if (subscription.group === null) targets.push({ group: undefined, members: [member] });
      else {
        const members = groups.get(subscription.group);
        if (members === undefined) groups.set(subscription.group, [member]);
        else members.push(member);
      }
    }
  }
  for (const [group, members] of groups) {
    members.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    targets.push({ group, members: Object.freeze(members) });
  }
  return targets;
}

/**
 * True when a message to `destination` is for `subscription`: its pattern matches, or the
 * subscription's destination is partitioned and `destination` is one of its partitions
 * (`orders.created.p3` for `orders.created` with 8 partitions).
 */
export function matchesSubscription(
  subscription: Pick<AdvertisedSubscription, "destination" | "partitions">,
  destination: string,
): boolean {
  if (matches(subscription.destination, destination)) return true;
  const base =
    subscription.partitions === null ? undefined : partitionBase(destination, subscription.partitions);
  return base !== undefined && matches(subscription.destination, base);
}

/** `orders.created` for `orders.created.p3` when 3 < `partitions`; otherwise undefined. */
export function partitionBase(destination: string, partitions: number): string | undefined {
  const dot = destination.lastIndexOf(".");
  if (dot <= 0 || destination[dot + 1] !== "p") return undefined;
  const digits = destination.slice(dot + 2);
  if (!/^(0|[1-9]\d*)$/.test(digits) || Number(digits) >= partitions) return undefined;
  return destination.slice(0, dot);
}
