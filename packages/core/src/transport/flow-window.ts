import { HEADER_SIZE } from "../protocol/frame.ts";
import { type ConnectionAttributes, emit, type Telemetry } from "../telemetry/telemetry.ts";

/** Each stream direction starts with this many bytes of credit (protocol constant). */
export const INITIAL_WINDOW = 1024 * 1024;
/**
 * What a MESSAGE costs in window besides its body: its frame header. Without it, empty messages
 * would cost nothing and a reader that stops reading could not stop their sender.
 */
export const MESSAGE_OVERHEAD = HEADER_SIZE;
/** Credit is granted back once this much has been consumed since the last grant. */
const GRANT_AT = INITIAL_WINDOW / 2;

/**
 * Credit-based flow control of one stream, both directions, the same on the client and the server:
 * the send side spends credit per MESSAGE and waits when it has none; the receive side counts what
 * arrived and was consumed, grants credit back at half a window, and spots a peer that ignores it.
 * Every MESSAGE costs its body plus `MESSAGE_OVERHEAD` bytes.
 */
export class FlowWindow {
  /** Bytes the peer still lets us send; may go negative by the last message sent. */
  #send = INITIAL_WINDOW;
  #waiter: (() => void) | undefined;
  /** Bytes received and not yet consumed by the reader. */
  #unconsumed = 0;
  /** Bytes consumed since the last grant. */
  #granted = 0;
  /** How far past the window the peer may get before it is a violation: one message in flight. */
  readonly #limit: number;

  constructor(maxFrameBytes: number) {
    this.#limit = INITIAL_WINDOW + maxFrameBytes + MESSAGE_OVERHEAD;
  }

  /** Spends the credit of one outgoing MESSAGE with a body of `bodyBytes`. */
  charge(bodyBytes: number): void {
    this.#send -= bodyBytes + MESSAGE_OVERHEAD;
  }

  /**
   * `undefined` while there is credit to send; else a promise that resolves when credit arrives or
   * `release()` is called. Only one sender waits at a time (for credit or in `waitWithin`).
   */
  waitForCredit(): Promise<void> | undefined {
    if (this.#send > 0) return undefined;
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** The peer granted `bytes` of credit. */
  onCredit(bytes: number): void {
    this.#send += bytes;
    if (this.#send > 0) this.release();
  }

  /**
   * Waits for `drain` (the connection's write queue), or less: `release()` ends the wait too, so a
   * sender held by a connection that does not drain is woken when its stream ends.
   */
  waitWithin(drain: Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      this.#waiter = resolve;
      drain.then(() => {
        if (this.#waiter === resolve) this.#waiter = undefined;
        resolve();
      });
    });
  }

  /** Wakes a waiting sender (credit came, or the stream ended: it re-checks and stops). */
  release(): void {
    const w = this.#waiter;
    if (w === undefined) return;
    this.#waiter = undefined;
    w();
  }

  /** Counts an incoming MESSAGE; true when the peer sent more than its credit allowed. */
  received(bodyBytes: number): boolean {
    this.#unconsumed += bodyBytes + MESSAGE_OVERHEAD;
    return this.#unconsumed > this.#limit;
  }

  /** The reader consumed a message of `bodyBytes`: the credit to grant now, or 0 for not yet. */
  consumed(bodyBytes: number): number {
    const cost = bodyBytes + MESSAGE_OVERHEAD;
    this.#unconsumed -= cost;
    this.#granted += cost;
    if (this.#granted < GRANT_AT) return 0;
    const grant = this.#granted;
    this.#granted = 0;
    return grant;
  }
}

/**
 * What a stream sender waits for before it pulls its next message: credit from the peer, then room
 * in the connection's write queue; `undefined` when it may send now. Waiting before the pull, not
 * after, means a reader that stops holds the producer before it makes a message it cannot send.
 * Either wait also ends when the stream ends (`flow.release()`) or the connection closes: re-check,
 * then call again.
 */
export function sendWait(flow: FlowWindow, output: StallOutput): Promise<void> | undefined {
  const credit = flow.waitForCredit();
  if (credit !== undefined) {
    if (output.telemetry !== undefined) stalled(output, output.telemetry, "credit");
    return credit;
  }
  const drain = output.backpressure();
  if (drain === undefined) return undefined;
  if (output.telemetry !== undefined) stalled(output, output.telemetry, "drain");
  return flow.waitWithin(drain);
}

/** What `sendWait` needs of a connection: its back-pressure, and where a stall is reported. */
export interface StallOutput {
  backpressure(): Promise<void> | undefined;
  readonly telemetry?: Telemetry | undefined;
  connectionAttributes?(): ConnectionAttributes;
}

function stalled(output: StallOutput, telemetry: Telemetry, waitingFor: "credit" | "drain"): void {
  const attributes = output.connectionAttributes?.() ?? { side: "client", protocol: "weft", peer: undefined };
  emit(telemetry, "flow.stalled", { ...attributes, waitingFor });
}
