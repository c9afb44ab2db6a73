import { describe, expect, it, vi } from "vitest";
import { Inbox } from "./inbox.ts";

function textInbox(onConsumed = vi.fn(), onAbandon = vi.fn()) {
  const inbox = new Inbox<string>((body) => Buffer.from(body).toString(), onConsumed, onAbandon);
  return { inbox, onConsumed, onAbandon };
}

describe("Inbox", () => {
  it("delivers pushed messages in order and reports each one consumed", async () => {
    const { inbox, onConsumed } = textInbox();
    inbox.push(Buffer.from("a"), 0, 0);
    inbox.push(Buffer.from("bc"), 0, 0);
    inbox.end();
    const got: string[] = [];
    for await (const m of inbox) got.push(m);
    expect(got).toEqual(["a", "bc"]);
    expect(onConsumed.mock.calls).toEqual([[1], [2]]);
  });

  it("return() settles a next() that is still waiting, as done, and abandons the stream", async () => {
    // the read-with-timeout pattern: race next() against a timer, give up, return()
    const { inbox, onAbandon } = textInbox();
    const pending = inbox.next();
    await expect(inbox.return()).resolves.toEqual({ done: true, value: undefined });
    await expect(pending).resolves.toEqual({ done: true, value: undefined });
    expect(onAbandon).toHaveBeenCalledTimes(1);
    // nothing more arrives once abandoned
    inbox.push(Buffer.from("late"), 0, 0);
    await expect(inbox.next()).resolves.toEqual({ done: true, value: undefined });
  });

  it("return() after the stream ended does not abandon it", async () => {
    const { inbox, onAbandon } = textInbox();
    inbox.end();
    await inbox.return();
    expect(onAbandon).not.toHaveBeenCalled();
  });
});
