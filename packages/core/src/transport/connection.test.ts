import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { stalledSocket, streamIds, turn } from "../../test/stalled-socket.ts";
import type { WeftError } from "../errors/weft-error.ts";
import { encodeFrame, encodeOutFrame, SPLIT_BODY_BYTES } from "../protocol/encode.ts";
import { DEFAULT_LIMITS, FrameType, HEADER_SIZE } from "../protocol/frame.ts";
import { Connection } from "./connection.ts";

class TestConnection extends Connection {
  protected onFrame(): void {}
  protected onDecodeError(): void {}
  protected onClose(_error: WeftError): void {}
}

/** A duplex that records each socket write: one entry per `_write`, or the parts of one `_writev`. */
function recordingSocket() {
  const writes: Array<{ gathered: boolean; parts: Buffer[] }> = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      writes.push({ gathered: false, parts: [chunk] });
      done();
    },
    writev(chunks, done) {
      writes.push({ gathered: true, parts: chunks.map((c) => c.chunk as Buffer) });
      done();
    },
  });
  return { socket, writes };
}

function flushed(connection: Connection): Promise<void> {
  return new Promise((resolve) => connection.send(Buffer.alloc(0), () => resolve()));
}

describe("Connection writes", () => {
  it("writes what was queued before end() and refuses what comes after, leaving the socket intact", async () => {
    const { socket, writes } = recordingSocket();
    const errors: unknown[] = [];
    socket.on("error", (e) => errors.push(e));
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined);
    connection.send(encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(8)));
    connection.end();
    const refused = await new Promise<Error | null | undefined>((resolve) =>
      connection.send(encodeFrame(FrameType.PONG, 0, 0, 0, 0, undefined, Buffer.alloc(8)), resolve),
    );
    expect(refused).toBeInstanceOf(Error);
    await new Promise((resolve) => setImmediate(resolve));
    expect(writes).toHaveLength(1);
    expect(writes[0]!.parts[0]![3]).toBe(FrameType.PING);
    expect(errors).toEqual([]);
    expect(socket.destroyed).toBe(false);
    connection.destroy(new Error("done") as WeftError);
  });

  it("concatenates small frames queued in one turn into one write", async () => {
    const { socket, writes } = recordingSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined);
    for (let i = 0; i < 3; i++) {
      connection.send(encodeOutFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, Buffer.alloc(100, i)));
    }
    await flushed(connection);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.gathered).toBe(false);
    expect(writes[0]!.parts[0]!.length).toBe(3 * (HEADER_SIZE + 100));
  });

  it("never copies a body of SPLIT_BODY_BYTES or more, even when the flush is small", async () => {
    // 8 KiB + a few small frames is far below the old 64 KiB gather threshold
    const { socket, writes } = recordingSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined);
    const body = Buffer.alloc(SPLIT_BODY_BYTES, 7);
    connection.send(encodeOutFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, Buffer.alloc(10)));
    connection.send(encodeOutFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, body));
    await flushed(connection);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.gathered).toBe(true);
    expect(writes[0]!.parts.some((p) => p === body)).toBe(true);
    const total = writes[0]!.parts.reduce((n, p) => n + p.length, 0);
    expect(total).toBe(HEADER_SIZE + 10 + HEADER_SIZE + SPLIT_BODY_BYTES);
  });

  it("goes back to concatenating after a gathered flush", async () => {
    const { socket, writes } = recordingSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined);
    connection.send(encodeOutFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, Buffer.alloc(SPLIT_BODY_BYTES)));
    await flushed(connection);
    connection.send(encodeOutFrame(FrameType.MESSAGE, 0, 1, 0, 0, undefined, Buffer.alloc(10)));
    await flushed(connection);
    expect(writes.map((w) => w.gathered)).toEqual([true, false]);
  });
});

const ping = () => encodeFrame(FrameType.PING, 0, 0, 0, 0, undefined, Buffer.alloc(8));

describe("Connection output bound", () => {
  it("stops reading at the high-water mark and reads again below the low-water mark", async () => {
    const { socket, release } = stalledSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined, {
      highWaterBytes: 1000,
      lowWaterBytes: 100,
    });
    connection.send(Buffer.alloc(600));
    expect(connection.readPaused).toBe(false);
    connection.send(Buffer.alloc(600));
    expect(connection.readPaused).toBe(true);
    expect(socket.isPaused()).toBe(true);
    await turn(); // flushed into the socket, still unsent
    expect(connection.unsentBytes).toBe(1200);
    expect(connection.readPaused).toBe(true);
    release();
    await turn();
    expect(connection.unsentBytes).toBe(0);
    expect(connection.readPaused).toBe(false);
    expect(socket.isPaused()).toBe(false);
  });

  it("counts PONGs, not its own requests, when it counts answers only", async () => {
    const { socket, release } = stalledSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined, {
      highWaterBytes: 1000,
      lowWaterBytes: 100,
      answersOnly: true,
    });
    connection.send(Buffer.alloc(5000)); // a request: the application's own output
    expect(connection.readPaused).toBe(false);
    for (let i = 0; i < 35; i++) socket.push(ping()); // 35 PONGs: 980 bytes
    await turn();
    expect(connection.readPaused).toBe(false);
    socket.push(ping());
    await turn();
    expect(connection.readPaused).toBe(true);
    release();
    await turn();
    expect(connection.readPaused).toBe(false);
  });
});

describe("Connection backlog", () => {
  // one buffer each (`encodeFrame` does not split a large body off)
  const frame = (streamId: number, bytes: number) =>
    encodeFrame(FrameType.MESSAGE, 0, streamId, 0, 0, undefined, Buffer.alloc(bytes));

  /** A client's connection (`keepBacklog`) whose output bound is `highWaterBytes`. */
  const backlogConnection = (socket: Duplex, highWaterBytes: number) =>
    new TestConnection(socket, DEFAULT_LIMITS, undefined, {
      highWaterBytes,
      lowWaterBytes: 0,
      keepBacklog: true,
    });
  /** The same with a 100,000-byte bound, whose socket holds a 70,000-byte frame it has not passed on. */
  const backlogged = async (socket: Duplex) => {
    const connection = backlogConnection(socket, 100_000);
    connection.send(frame(1, 70_000));
    await turn();
    return connection;
  };

  it("keeps frames while the socket has not drained, and never writes one taken back", async () => {
    const { socket, written, release } = stalledSocket();
    const connection = new TestConnection(socket, DEFAULT_LIMITS, undefined, { keepBacklog: true });
    // over the socket's own mark (64 KiB): it asks to drain
    connection.send(frame(1, 70_000));
    await turn();
    expect(socket.writableNeedDrain).toBe(true);
    const kept = [2, 3, 4].map((id) => connection.send(frame(id, 100)));
    await turn();
    expect(socket.writableLength).toBe(HEADER_SIZE + 70_000); // the rest is held by the connection
    expect(connection.unsend(kept[1]!, 1)).toBe(true);
    expect(connection.unsentBytes).toBe(HEADER_SIZE + 70_000 + 2 * (HEADER_SIZE + 100));
    release();
    await turn();
    expect(streamIds(written)).toEqual([1, 2, 4]);
    expect(connection.unsend(kept[0]!, 1)).toBe(false); // already written
  });

  it("hands a backlog to the socket a high-water mark at a time", async () => {
    const { socket, written, release } = stalledSocket();
    const connection = await backlogged(socket);
    for (let id = 2; id <= 7; id++) connection.send(frame(id, 40_000));
    await turn();
    expect(socket.writableLength).toBe(HEADER_SIZE + 70_000);
    // each drain passes on at most 100,000 bytes: two of the 40,000-byte frames
    release();
    await turn();
    expect(socket.writableLength).toBe(2 * (HEADER_SIZE + 40_000));
    for (let i = 0; i < 3; i++) {
      release();
      await turn();
    }
    expect(streamIds(written)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(connection.unsentBytes).toBe(0);
  });

  it("runs a frame's onWritten with the write that passes it on, while a backlog stays queued", async () => {
    const { socket, written, release } = stalledSocket();
    const connection = await backlogged(socket);
    let done = 0;
    connection.send(frame(2, 100), () => done++); // a one-way REQUEST, say
    // the application keeps more than a high-water mark queued: the queue never empties
    let id = 3;
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 3; i++) connection.send(frame(id++, 40_000));
      release();
      await turn();
    }
    expect(streamIds(written)).toContain(2);
    release();
    await turn();
    expect(done).toBe(1);
    expect(connection.unsentBytes).toBeGreaterThan(100_000);
  });

  it("passes each REQUEST that waited to restampRequest once, never a body, through partial writes", async () => {
    class Restamping extends TestConnection {
      readonly restamped: number[] = [];
      constructor(socket: Duplex, highWaterBytes: number) {
        super(socket, DEFAULT_LIMITS, undefined, { highWaterBytes, lowWaterBytes: 0, keepBacklog: true });
        this.restampsRequests = true;
      }
      protected override restampRequest(head: Buffer): void {
        this.restamped.push(head.readUInt32BE(8));
      }
    }
    const request = (id: number, bodyBytes: number) => {
      // a body that begins like a REQUEST of stream 999: a walk that took it for a head would say so
      const body = Buffer.alloc(bodyBytes);
      encodeFrame(FrameType.REQUEST, 0, 999, 0, 0, undefined, undefined).copy(body);
      return encodeOutFrame(FrameType.REQUEST, 0, id, 0, 0, [[":path", "/a.B/c"]], body);
    };
    // nothing waited: written at once, nothing to restamp
    const free = recordingSocket();
    const quick = new Restamping(free.socket, 30_000);
    quick.send(request(1, 100));
    await turn();
    expect(free.writes).toHaveLength(1);
    expect(quick.restamped).toEqual([]);

    const { socket, release } = stalledSocket();
    const connection = new Restamping(socket, 30_000);
    connection.send(frame(1, 70_000));
    await turn();
    expect(socket.writableNeedDrain).toBe(true);
    connection.send(request(2, 20_000)); // split: head, then body
    connection.send(request(3, 100));
    connection.send(request(4, 25_000)); // the first drain's write ends between its head and body
    connection.send(frame(5, 100));
    const withdrawn = connection.send(request(6, 100));
    connection.send(request(7, SPLIT_BODY_BYTES));
    expect(connection.unsend(withdrawn, 1)).toBe(true);
    await turn();
    expect(connection.restamped).toEqual([]);
    for (let i = 0; i < 10 && connection.unsentBytes > 0; i++) {
      release();
      await turn();
    }
    expect(connection.unsentBytes).toBe(0);
    expect(connection.restamped).toEqual([2, 3, 4, 7]);
  });

  it("writes exactly the frames not taken back, in order, through partial writes and split frames", async () => {
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let trial = 0; trial < 100; trial++) {
      const { socket, written, release } = stalledSocket();
      const connection = backlogConnection(socket, 1000 + random(20_000));
      const frames: Array<{ at: number; parts: Buffer[]; kept: boolean }> = [];
      let fill = 1;
      for (let step = 0; step < 60; step++) {
        const op = random(10);
        if (op < 5) {
          const part = (n: number) => Buffer.alloc(n, fill++ & 0xff);
          const parts = random(2) === 0 ? [part(1 + random(40_000))] : [part(20), part(1 + random(40_000))];
          const at = connection.send(parts.length === 1 ? parts[0]! : [parts[0]!, parts[1]!]);
          frames.push({ at, parts, kept: true });
        } else if (op < 7 && frames.length > 0) {
          const f = frames[random(frames.length)]!;
          if (!f.kept) continue;
          // taken back exactly when none of its bytes reached the socket
          const before = frames.slice(0, frames.indexOf(f)).filter((g) => g.kept);
          const offset = before.reduce((n, g) => n + g.parts.reduce((m, p) => m + p.length, 0), 0);
          // handed to the socket: all that was queued and not taken back, but what the connection holds
          const queued = frames
            .filter((g) => g.kept)
            .reduce((n, g) => n + g.parts.reduce((m, p) => m + p.length, 0), 0);
          const handed = queued - (connection.unsentBytes - socket.writableLength);
          const taken = connection.unsend(f.at, f.parts.length);
          expect(taken).toBe(handed <= offset);
          if (taken) f.kept = false;
        } else if (op < 9) {
          release();
          await turn();
        } else {
          await turn();
        }
      }
      for (let i = 0; i < 200 && connection.unsentBytes > 0; i++) {
        release();
        await turn();
      }
      const expected = Buffer.concat(frames.filter((f) => f.kept).flatMap((f) => f.parts));
      expect(Buffer.concat(written).equals(expected)).toBe(true);
    }
  });
});
