/*
 * Reading and replaying a dead-letter destination, on any broker: what `weft dlq list|replay` runs.
 * Listing browses (`Broker.browse`) the view of `DEAD_LETTER_GROUP`; replaying consumes through
 * that group, republishes each chosen dead letter to where it was first published, and acknowledges
 * it only once the broker has the republished message.
 */
import { Code, ConfigError, stableHash, WeftError } from "@weft/core";
import { armDeadline, positiveInteger } from "@weft/core/internal";
import { type Broker, DEAD_LETTER_GROUP, type Delivery, partitionDestination } from "./broker.ts";
import { checkDestinationName } from "./destination.ts";
import { type DeadLetter, type Envelope, readDeadLetter } from "./envelope.ts";

/** One message of a dead-letter destination, as `listDeadLetters` reads it. */
export interface ListedDeadLetter {
  /** The message as the dead-letter destination holds it (`weft-dlq-*` headers included). */
  readonly letter: Envelope;
  /** Its dead-letter headers read, and the original message; `undefined` when it is not a dead letter. */
  readonly deadLetter: DeadLetter | undefined;
  /** Why it cannot be replayed (not a dead letter, malformed headers); `undefined` when it can. */
  readonly problem: string | undefined;
}

/** Options of `listDeadLetters`. */
export interface ListDeadLettersOptions {
  /** Most dead letters listed, oldest first. Default 100. */
  readonly limit?: number;
}

/**
 * Lists the dead letters of `destination` (a dead-letter destination such as `dlq.shipping`) that
 * `DEAD_LETTER_GROUP` has not acknowledged, oldest first, without consuming them. Throws
 * `ConfigError` for a bad destination or limit; rejects with `UNIMPLEMENTED` when the broker cannot
 * browse (it stores nothing), and with the broker's errors (`BROKER_UNAVAILABLE`).
 */
export async function listDeadLetters(
  broker: Broker,
  destination: string,
  options: ListDeadLettersOptions = {},
): Promise<ListedDeadLetter[]> {
  checkDestinationName(destination);
  const limit = positiveInteger("limit", options.limit ?? 100);
  const browsed = await browse(broker, destination, limit);
  return browsed.map(({ envelope, malformed }) => {
    if (malformed !== undefined)
      return { letter: envelope, deadLetter: undefined, problem: malformed.message };
    try {
      return { letter: envelope, deadLetter: readDeadLetter(envelope), problem: undefined };
    } catch (error) {
      return { letter: envelope, deadLetter: undefined, problem: messageOf(error) };
    }
  });
}

/** Options of `replayDeadLetters`: give `ids`, or `all`. */
export interface ReplayDeadLettersOptions {
  /** Replay these dead letters (message ids). */
  readonly ids?: readonly string[];
  /** Replay every dead letter listed when the replay starts (up to `limit`). */
  readonly all?: boolean;
  /** With `all`: most dead letters replayed. Default 1,000. */
  readonly limit?: number;
  /**
   * The original destination's partition count, when it was declared with `partitions`: the message
   * is republished to its key's partition (`stableHash(key) % partitions`, as the messenger does).
   * Default: not partitioned.
   */
  readonly partitions?: number;
  /**
   * How long to wait for the chosen dead letters to be delivered, in ms; those not seen by then are
   * reported `notFound`. Default 10,000.
   */
  readonly timeoutMs?: number;
}

/** What `replayDeadLetters` did. */
export interface ReplayResult {
  /** Republished to their original destination and acknowledged in the dead-letter destination. */
  readonly replayed: readonly string[];
  /** Left in the dead-letter destination: not a dead letter, or the republish failed. */
  readonly failed: readonly { readonly id: string; readonly error: string }[];
  /** Asked for (`ids`) or listed (`all`) but not delivered within `timeoutMs`. */
  readonly notFound: readonly string[];
}

/**
 * Republishes dead letters of `destination` to the destination each was first published to
 * (`weft-dlq-destination`), with the same message id, body and headers and without the `weft-dlq-*`
 * headers, then acknowledges each in `DEAD_LETTER_GROUP`, which removes it from that group's view
 * (`listDeadLetters`). Consumes through that group: dead letters it is not asked for are held while
 * it runs and given back when it ends. Never loses a message: a dead letter is acknowledged only after
 * the broker confirmed its republish; a crash in between republishes it twice (same id, so
 * deduplicating brokers and idempotent consumers see it once).
 *
 * Throws `ConfigError` for bad options (neither or both of `ids` and `all`); rejects with
 * `UNIMPLEMENTED` for `all` on a broker that cannot browse, and with the broker's errors.
 */
export async function replayDeadLetters(
  broker: Broker,
  destination: string,
  options: ReplayDeadLettersOptions,
): Promise<ReplayResult> {
  checkDestinationName(destination);
  const all = options.all === true;
  if ((options.ids === undefined) === !all)
    throw new ConfigError("ids", "message ids, or all: true (one of the two)", options.ids);
  if (
    options.ids !== undefined &&
    (!Array.isArray(options.ids) || !options.ids.every((i) => typeof i === "string"))
  )
    throw new ConfigError("ids", "an array of message ids", options.ids);
  const limit = positiveInteger("limit", options.limit ?? 1000);
  const timeoutMs = positiveInteger("timeoutMs", options.timeoutMs ?? 10_000, "milliseconds > 0");
  const partitions =
    options.partitions === undefined ? undefined : positiveInteger("partitions", options.partitions);
  const wanted = new Set(
    all ? (await browse(broker, destination, limit)).map((b) => b.envelope.id) : options.ids,
  );
  const replayed: string[] = [];
  const failed: { id: string; error: string }[] = [];
  if (wanted.size === 0) return { replayed, failed, notFound: [] };

  const work: Promise<void>[] = [];
  let finish = (): void => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const settleOne = (): void => {
    if (replayed.length + failed.length === wanted.size) finish();
  };
  const replay = async (delivery: Delivery): Promise<void> => {
    const id = delivery.envelope.id;
    try {
      if (delivery.malformed !== undefined) throw delivery.malformed;
      const { original } = readDeadLetter(delivery.envelope);
      await broker.publish(toOriginal(original, partitions));
      await delivery.ack();
      replayed.push(id);
    } catch (error) {
      // left where it is: held now, given back when the subscription closes
      failed.push({ id, error: messageOf(error) });
    }
    settleOne();
  };
  const seen = new Set<string>();
  const subscription = await broker.subscribe(
    {
      destination,
      group: DEAD_LETTER_GROUP,
      // what is not asked for is held, not nacked (no hot redelivery loop), so make room for it
      maxInFlight: Math.max(256, wanted.size),
      ackWaitMs: Math.max(30_000, 2 * timeoutMs),
      partitions: undefined,
    },
    (delivery) => {
      const id = delivery.envelope.id;
      if (!wanted.has(id) || seen.has(id)) return;
      seen.add(id);
      work.push(replay(delivery));
    },
  );
  const timer = armDeadline(Date.now() + timeoutMs, finish);
  try {
    await finished;
  } finally {
    timer.cancel();
    await subscription.stop();
    await Promise.all(work);
    await subscription.close();
  }
  return { replayed, failed, notFound: [...wanted].filter((id) => !seen.has(id)) };
}

/** The original message, to its key's partition when the destination is partitioned. */
function toOriginal(original: Envelope, partitions: number | undefined): Envelope {
  if (partitions === undefined) return original;
  const p = original.key === undefined ? 0 : stableHash(original.key) % partitions;
  return { ...original, destination: partitionDestination(original.destination, p) };
}

async function browse(broker: Broker, destination: string, limit: number) {
  if (broker.browse === undefined)
    throw new WeftError(
      Code.UNIMPLEMENTED,
      `the ${broker.name} broker cannot list messages without consuming them (it stores none)`,
    );
  return broker.browse(destination, { group: DEAD_LETTER_GROUP, limit });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
