import { describe, expect, it } from "vitest";
import { checkDestinationPattern, matches } from "../destination.ts";
import { partitionBase, routeOf } from "./routes.ts";
import type { AdvertisedSubscription } from "./service.ts";

describe("destination patterns", () => {
  it("matches `*` to one token and a last `>` to one or more", () => {
    const cases: [string, string, boolean][] = [
      ["orders.created", "orders.created", true],
      ["orders.*", "orders.created", true],
      ["orders.*", "orders.created.eu", false],
      ["orders.*", "orders", false],
      ["*.created", "orders.created", true],
      ["orders.>", "orders.created.eu", true],
      ["orders.>", "orders", false],
      [">", "orders", true],
      ["orders.created.eu", "orders.created", false],
      ["orders.created", "orders.created.eu", false],
      ["orders.*.eu", "orders.created.eu", true],
      ["orders.*.eu", "orders.created.us", false],
    ];
    for (const [pattern, destination, expected] of cases)
      expect(matches(pattern, destination), `${pattern} ~ ${destination}`).toBe(expected);
  });

  it("refuses a `>` that is not last, empty tokens and other characters", () => {
    for (const bad of ["orders.>.eu", "orders..x", "", "orders.a b", "orders.**", 3])
      expect(() => checkDestinationPattern(bad), String(bad)).toThrow(/destination/);
    for (const good of ["orders", "orders.*", "orders.>", "*.x.>"]) checkDestinationPattern(good);
  });
});

describe("routeOf", () => {
  const sub = (id: string, destination: string, group: string | null, partitions: number | null = null) =>
    ({ id, destination, group, partitions }) satisfies AdvertisedSubscription;

  it("makes one target per group, members sorted by address across processes, and one per private subscription", () => {
    const targets = routeOf("orders.created", [
      ["10.0.0.2:1", [sub("s1", "orders.*", "g"), sub("s2", "orders.created", null)]],
      ["10.0.0.1:1", [sub("s1", "orders.>", "g"), sub("s9", "payments.*", "g")]],
    ]);
    expect(targets.map((t) => [t.group, t.members.map((m) => m.address)])).toEqual([
      [undefined, ["10.0.0.2:1/s2"]],
      ["g", ["10.0.0.1:1/s1", "10.0.0.2:1/s1"]],
    ]);
  });

  it("routes a partition of a partitioned destination to its subscriptions", () => {
    expect(partitionBase("carts.p3", 4)).toBe("carts");
    expect(partitionBase("carts.p4", 4)).toBeUndefined();
    expect(partitionBase("carts.p03", 4)).toBeUndefined();
    expect(partitionBase("carts.px", 4)).toBeUndefined();
    const advertised = [["h:1", [sub("s1", "carts", "g", 4)]]] as const;
    expect(routeOf("carts.p2", advertised)).toHaveLength(1);
    expect(routeOf("carts.p9", advertised)).toHaveLength(0);
    expect(routeOf("carts", advertised)).toHaveLength(1);
  });
});
