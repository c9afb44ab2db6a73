import { describe, expect, it } from "vitest";
import { FlowWindow, INITIAL_WINDOW, MESSAGE_OVERHEAD, sendWait } from "./flow-window.ts";

describe("FlowWindow", () => {
  it("charges each message its body plus the frame header, and waits once the window is spent", () => {
    const flow = new FlowWindow(4096);
    const body = INITIAL_WINDOW / 4 - MESSAGE_OVERHEAD;
    for (let i = 0; i < 3; i++) {
      expect(flow.waitForCredit()).toBeUndefined();
      flow.charge(body);
    }
    expect(flow.waitForCredit()).toBeUndefined();
    flow.charge(body); // exactly the window: nothing left
    expect(flow.waitForCredit()).toBeInstanceOf(Promise);
  });

  it("counts empty messages too, so a stream of them still stops", () => {
    const flow = new FlowWindow(4096);
    for (let i = 0; i < INITIAL_WINDOW / MESSAGE_OVERHEAD; i++) flow.charge(0);
    expect(flow.waitForCredit()).toBeInstanceOf(Promise);
  });

  it("wakes the waiting sender when credit arrives, not before the window is positive again", async () => {
    const flow = new FlowWindow(4096);
    flow.charge(INITIAL_WINDOW + 100 - MESSAGE_OVERHEAD); // overdrawn by 100
    let woken = false;
    const wait = flow.waitForCredit()!.then(() => {
      woken = true;
    });
    flow.onCredit(100); // back to exactly 0: still no credit
    await Promise.resolve();
    expect(woken).toBe(false);
    flow.onCredit(1);
    await wait;
    expect(woken).toBe(true);
    expect(flow.waitForCredit()).toBeUndefined();
  });

  it("release() wakes a waiting sender without credit (the stream ended)", async () => {
    const flow = new FlowWindow(4096);
    flow.charge(INITIAL_WINDOW);
    const wait = flow.waitForCredit()!;
    flow.release();
    await expect(wait).resolves.toBeUndefined();
    expect(flow.waitForCredit()).toBeInstanceOf(Promise);
  });

  it("grants credit back once half a window has been consumed, in one grant", () => {
    const flow = new FlowWindow(4096);
    const body = 64 * 1024 - MESSAGE_OVERHEAD; // 64 KiB per message with its header
    let granted = 0;
    const grants: number[] = [];
    for (let i = 0; i < 16; i++) {
      expect(flow.received(body)).toBe(false);
      const credit = flow.consumed(body);
      if (credit > 0) grants.push(credit);
      granted += credit;
    }
    expect(grants).toEqual([INITIAL_WINDOW / 2, INITIAL_WINDOW / 2]);
    expect(granted).toBe(INITIAL_WINDOW);
  });

  it("tolerates one message past the window, and flags the peer that sends more", () => {
    const maxFrameBytes = 4096;
    const flow = new FlowWindow(maxFrameBytes);
    expect(flow.received(INITIAL_WINDOW - MESSAGE_OVERHEAD)).toBe(false); // the whole window
    expect(flow.received(maxFrameBytes)).toBe(false); // one more message in flight
    expect(flow.received(0)).toBe(true);
  });

  it("forgets what the reader consumed when judging a violation", () => {
    const flow = new FlowWindow(4096);
    const body = INITIAL_WINDOW - MESSAGE_OVERHEAD;
    expect(flow.received(body)).toBe(false);
    flow.consumed(body);
    expect(flow.received(body)).toBe(false);
  });
});

describe("sendWait", () => {
  const full = { backpressure: () => new Promise<void>(() => {}) };
  const free = { backpressure: () => undefined };

  it("is undefined with credit and room in the write queue", () => {
    expect(sendWait(new FlowWindow(4096), free)).toBeUndefined();
  });

  it("ends a wait for credit when the stream ends", async () => {
    const flow = new FlowWindow(4096);
    flow.charge(INITIAL_WINDOW);
    const wait = sendWait(flow, free);
    expect(wait).toBeDefined();
    flow.release();
    await wait;
  });

  it("ends a wait for a write queue that never drains when the stream ends", async () => {
    const flow = new FlowWindow(4096);
    const wait = sendWait(flow, full);
    expect(wait).toBeDefined();
    flow.release();
    await wait;
  });

  it("ends the wait when the write queue drains", async () => {
    const flow = new FlowWindow(4096);
    let drain!: () => void;
    const wait = sendWait(flow, { backpressure: () => new Promise<void>((r) => (drain = r)) });
    drain();
    await wait;
  });
});
