import type { Duplex } from "node:stream";
import type { RetryRefused } from "../call/client-call.ts";
import { budgetLeft } from "../call/deadline.ts";
import { Code } from "../errors/code.ts";
import { Reason } from "../errors/reason.ts";
import { WeftError } from "../errors/weft-error.ts";
import type { Call, CallResult } from "../interceptor/call.ts";
import type { DecodeErrorInfo } from "../protocol/decode.ts";
import { encodeFrame, type OutFrame } from "../protocol/encode.ts";
import { type Frame, type FrameLimits, FrameType } from "../protocol/frame.ts";
import { decodeCredit } from "../protocol/status.ts";
import { lowerTimeout } from "../protocol/timeout.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import { StreamTable } from "./stream-table.ts";
import { TcpClientCall } from "./tcp-call.ts";
import type { Compression } from "./wire-message.ts";

const MAX_STREAM_ID = 0x7fffffff;

export interface ClientConnectionOptions {
  limits: FrameLimits;
  compression: Compression | null;
  keepalive: { intervalMs: number; timeoutMs: number } | null;
  /** Output bound (only PONGs count: `answersOnly`) and idle timeout. */
  connection?: Partial<ConnectionOptions>;
}

/**
 * The client side of one connection: opens calls with increasing stream ids, routes the server's
 * frames back to them, handles goaway and keepalive. Many calls and streams share it at once; each
 * call is a `TcpClientCall`.
 */
export class ClientConnection extends Connection {
  readonly #options: ClientConnectionOptions;
  readonly #calls = new StreamTable<TcpClientCall>();
  /** One-way REQUESTs with a deadline, queued and not yet written: stream id → deadline. */
  readonly #oneway = new Map<number, number>();
  #nextId = 1;
  #goaway = false;
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #pingSentAt = 0;
  #receivedAtTick = 0;
  /** Why the connection closed; calls started after that fail with it instead of waiting forever. */
  closeError: WeftError | undefined;
  /** Called when the connection can take no new calls (goaway, closed, ids exhausted). */
  onUnusable: (() => void) | undefined;

  constructor(socket: Duplex, peer: string | undefined, options: ClientConnectionOptions) {
    super(socket, options.limits, peer, options.connection);
    this.#options = options;
    // a REQUEST that waited in the connection's queue goes out with the budget left when it goes
    this.restampsRequests = true;
    if (options.keepalive !== null) {
      const { intervalMs } = options.keepalive;
      this.#keepaliveTimer = setInterval(() => this.#keepalive(), Math.max(1, Math.min(intervalMs, 1000)));
      this.#keepaliveTimer.unref();
    }
  }

  /** Calls in flight. */
  get load(): number {
    return this.#calls.size;
  }

  protected override get callsInFlight(): number {
    return this.#calls.size;
  }

  /** Idle for `idleTimeoutMs`: no new calls here, and close. */
  protected override onTimeout(error: WeftError): void {
    this.#markUnusable();
    this.closeSoon(error);
  }

  /** True while new calls may be opened here. */
  get usable(): boolean {
    return !this.closed && !this.#goaway && this.#nextId < MAX_STREAM_ID;
  }

  /**
   * Starts a call. Rejects with the call's error; resolves when the response (or, for a stream, its
   * headers or first message) arrived. `retry`, when given, is how a call the server refused without
   * starting it (`REFUSED_STREAM`: goaway or shutdown) is sent again elsewhere; `attempt` counts
   * those resends.
   */
  start(call: Call, retry?: RetryRefused, attempt = 0): Promise<CallResult> {
    return new TcpClientCall(this, call, retry, attempt).start();
  }

  /**
   * The stream id of a REQUEST about to be queued. Taken when the frame is made, not when the call
   * starts (a call may wait for its first message), so ids go out in increasing order (§9.1).
   */
  nextStreamId(): number {
    const id = this.#nextId++;
    if (this.#nextId >= MAX_STREAM_ID) this.#markUnusable();
    return id;
  }

  register(id: number, call: TcpClientCall): void {
    this.#calls.set(id, call);
  }

  unregister(id: number): void {
    this.#calls.delete(id);
    if (this.#calls.size === 0 && this.#goaway) this.end();
  }

  get compression(): Compression | null {
    return this.#options.compression;
  }

  /**
   * Queues a one-way call's REQUEST (`id`, made with `deadline`); `onWritten` runs once it was
   * handed to the OS or could not be. Nothing answers it, so the call is in no table: its deadline
   * is kept here while it is queued, for `restampRequest`.
   */
  sendOneway(
    id: number,
    deadline: number | undefined,
    frame: OutFrame,
    onWritten: (error?: Error | null) => void,
  ): void {
    if (deadline === undefined) {
      this.send(frame, onWritten);
      return;
    }
    this.#oneway.set(id, deadline);
    this.send(frame, (error) => {
      this.#oneway.delete(id);
      onWritten(error);
    });
  }

  /** Lowers a waiting REQUEST's `:timeout` to its call's budget left now (§11). */
  protected override restampRequest(head: Buffer, now: number): void {
    const id = head.readUInt32BE(8);
    const deadline = this.#calls.get(id)?.requestDeadline ?? this.#oneway.get(id);
    if (deadline !== undefined) lowerTimeout(head, budgetLeft(deadline, now));
  }

  protected override onGoaway(lastStreamId: number): void {
    this.#markUnusable();
    // Calls the server will never process can be retried elsewhere; a REQUEST of theirs still queued
    // here is taken back first, so it is not written to a server that will not read it.
    for (const [id, call] of this.#calls.entries()) {
      if (id > lastStreamId) call.refuseGoingAway();
    }
    if (this.#calls.size === 0) this.end();
  }

  protected onFrame(frame: Frame): void {
    const call = this.#calls.get(frame.streamId);
    if (call === undefined) return; // late frame of a finished or cancelled call
    switch (frame.type) {
      case FrameType.RESPONSE:
        call.onResponse(frame);
        return;
      case FrameType.HEADERS:
        call.onHeaders(frame);
        return;
      case FrameType.MESSAGE:
        call.onMessage(frame);
        return;
      case FrameType.END:
        call.onEnd(frame);
        return;
      case FrameType.CREDIT:
        call.onCredit(decodeCredit(frame.body));
        return;
      default:
        return; // unknown frame types are ignored
    }
  }

  protected onDecodeError(info: DecodeErrorInfo): void {
    if (info.fatal) {
      this.destroy(info.error);
      return;
    }
    if (info.streamId === 0) {
      // The server broke the protocol on the connection itself (a malformed PING, say): tell it why,
      // open no more calls here, and close once the calls in flight are done (§15).
      const { error } = info;
      this.sendGoaway(0, error.code, error.rawMessage, error.reason);
      this.#markUnusable();
      if (this.#calls.size === 0) this.end();
      return;
    }
    const call = this.#calls.get(info.streamId);
    if (call !== undefined) {
      call.fail(info.error);
      call.sendCancel();
    }
  }

  protected onClose(error: WeftError): void {
    this.closeError = error;
    if (this.#keepaliveTimer !== undefined) clearInterval(this.#keepaliveTimer);
    this.#markUnusable();
    for (const [, call] of this.#calls.entries()) call.fail(error); // entries() is a copy
    this.#calls.clear();
  }

  #markUnusable(): void {
    if (this.#goaway) return;
    this.#goaway = true;
    this.onUnusable?.();
  }

  #keepalive(): void {
    const ka = this.#options.keepalive;
    if (ka === null || this.closed) return;
    const now = Date.now();
    if (this.received !== this.#receivedAtTick) {
      this.#receivedAtTick = this.received;
      this.lastReceived = now;
    }
    if (this.#pingSentAt !== 0) {
      if (this.lastReceived >= this.#pingSentAt) this.#pingSentAt = 0;
      else if (now - this.#pingSentAt >= ka.timeoutMs) {
        this.destroy(
          new WeftError(Code.UNAVAILABLE, `no answer to keepalive ping within ${ka.timeoutMs} ms`, {
            reason: Reason.KEEPALIVE_TIMEOUT,
          }),
        );
        return;
      }
    }
    if (this.#pingSentAt === 0 && now - this.lastReceived >= ka.intervalMs) {
      this.#pingSentAt = now;
      const body = Buffer.allocUnsafe(8);
      body.writeDoubleBE(now, 0);
      this.send(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, body));
    }
  }
}
