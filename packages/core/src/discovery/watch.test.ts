import { describe, expect, it } from "vitest";
import { toInstance } from "./instance.ts";
import type { Instance } from "./registry.ts";
import { ServiceWatch } from "./watch.ts";

const instance = (id: string, weight = 100): Instance =>
  toInstance({ id, services: ["s"], addresses: { weft: "h:1" }, weight, startedAt: 1 }, 0);
const set = (...instances: Instance[]): Map<string, Instance> => new Map(instances.map((i) => [i.id, i]));

describe("ServiceWatch", () => {
  it("pushes the first set whole, then only differences, queued until pulled", async () => {
    const watch = new ServiceWatch("s", () => {});
    watch.offer(set());
    watch.offer(set(instance("a"), instance("b")));
    watch.offer(set(instance("a"), instance("b"))); // no change: nothing pushed
    watch.offer(set(instance("a", 5)));
    expect(await watch.next()).toEqual({ value: { added: [], updated: [], removed: [] }, done: false });
    expect((await watch.next()).value).toEqual({
      added: [instance("a"), instance("b")],
      updated: [],
      removed: [],
    });
    expect((await watch.next()).value).toEqual({
      added: [],
      updated: [instance("a", 5)],
      removed: [instance("b")],
    });
  });

  it("hands a change to a pull already waiting", async () => {
    const watch = new ServiceWatch("s", () => {});
    const pending = watch.next();
    watch.offer(set(instance("a")));
    expect((await pending).value?.added).toEqual([instance("a")]);
  });

  it("ends once: a waiting pull sees the end, queued changes are dropped, onEnd runs once", async () => {
    let ended = 0;
    const watch = new ServiceWatch("s", () => ended++);
    watch.offer(set());
    await watch.next();
    const pending = watch.next();
    watch.end();
    expect(await pending).toEqual({ value: undefined, done: true });
    watch.offer(set(instance("a")));
    expect(await watch.return()).toEqual({ value: undefined, done: true });
    expect(await watch.next()).toEqual({ value: undefined, done: true });
    expect(ended).toBe(1);
  });

  it("fails once: the waiting pull throws, later pulls see the end, onEnd runs once", async () => {
    let ended = 0;
    const watch = new ServiceWatch("s", () => ended++);
    const pending = watch.next();
    const error = new Error("unreachable");
    watch.fail(error);
    await expect(pending).rejects.toBe(error);
    watch.fail(new Error("again"));
    expect(await watch.next()).toEqual({ value: undefined, done: true });
    expect(ended).toBe(1);
  });

  it("fails a watch nobody is pulling: the next pull throws, then the end", async () => {
    const watch = new ServiceWatch("s", () => {});
    const error = new Error("unreachable");
    watch.fail(error);
    await expect(watch.next()).rejects.toBe(error);
    expect(await watch.next()).toEqual({ value: undefined, done: true });
  });
});
