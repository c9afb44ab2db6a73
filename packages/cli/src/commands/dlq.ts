import { ConfigError, WeftError } from "@weft/core";
import {
  type Broker,
  type BrokerSchemes,
  DEAD_LETTER_GROUP,
  type ListedDeadLetter,
  listDeadLetters,
  openBroker,
  type ReplayResult,
  replayDeadLetters,
} from "@weft/messaging";
import { BROKER_SCHEMES } from "../brokers.ts";
import { type Command, Exit, type ExitCode, type Io, parseCommandArgs, UsageError } from "../command.ts";

/** Characters of a body shown by `weft dlq list`. */
const PREVIEW_CHARS = 60;

const help = `Usage: weft dlq list <broker-url> <dead-letter-destination> [--limit N] [--json]
       weft dlq replay <broker-url> <dead-letter-destination> (--id ID... | --all) [options]

Dead letters are the messages a subscription gave up on (too many deliveries, expired, malformed,
or dead-lettered by its handler), published with weft-dlq-* headers to its dead-letter destination
(default dlq.<group>). weft dlq reads them through the consumer group "${DEAD_LETTER_GROUP}", for which
every subscription keeps them from its start.

  list     prints the dead letters the "${DEAD_LETTER_GROUP}" group has not acknowledged, oldest first,
           without removing them: id, original destination, group, reason, attempts, when, the
           error, a preview of the body.
  replay   republishes each chosen dead letter to its original destination (weft-dlq-destination)
           with the same message id, body and headers and without the weft-dlq-* headers, then
           acknowledges it in the "${DEAD_LETTER_GROUP}" group (it leaves the list). Dead letters not
           chosen are left where they are.

Broker URLs: ${Object.keys(BROKER_SCHEMES)
  .map((s) => `${s}://…`)
  .join(", ")}; memory: (in-process, so empty here). See docs/messaging.md,
"Broker URLs".

Options:
  --limit N        list: most dead letters printed (default 100); replay --all: most replayed
                   (default 1000)
  --json           list: one JSON document { deadLetters: [...] }; replay: { replayed, failed, notFound }
  --id ID          replay: the message id of a dead letter to replay (repeat for several)
  --all            replay: every dead letter listed when the replay starts
  --partitions N   replay: the original destination's partition count, when it was declared with
                   partitions (each message goes back to its key's partition)
  --timeout-ms MS  replay: how long to wait for the chosen dead letters to be delivered (default
                   10000); those not seen by then are reported not found
  -h, --help       show this help

Exit codes: 0 done (replay: every chosen dead letter replayed), 1 replay: some failed or were not
found, 2 usage error, or the broker could not be reached or cannot list messages.
`;

/**
 * `weft dlq` with the broker schemes it opens URLs with (the command itself uses every backend's;
 * tests give their own).
 */
export function dlqCommand(schemes: BrokerSchemes): Command {
  return {
    name: "dlq",
    summary: "list and replay the dead letters of a messaging destination (weft dlq list|replay)",
    help,
    async run(args, io) {
      const { values, positionals } = parseCommandArgs(
        args,
        {
          limit: { type: "string" },
          json: { type: "boolean" },
          id: { type: "string", multiple: true },
          all: { type: "boolean" },
          partitions: { type: "string" },
          "timeout-ms": { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        true,
      );
      if (values.help) {
        io.out(help);
        return Exit.OK;
      }
      const [action, url, destination, ...extra] = positionals;
      if (action !== "list" && action !== "replay")
        throw new UsageError(
          action === undefined ? "list or replay is required" : `unknown action ${action}`,
        );
      if (url === undefined) throw new UsageError("a broker URL is required");
      if (destination === undefined) throw new UsageError("a dead-letter destination is required");
      if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}`);
      const limit = integer(values.limit, "--limit");
      const json = values.json === true;
      if (action === "list") {
        for (const flag of ["id", "all", "partitions", "timeout-ms"] as const)
          if (values[flag] !== undefined) throw new UsageError(`--${flag} is for replay`);
      } else if ((values.id === undefined) === (values.all !== true))
        throw new UsageError("replay needs --id ID (one or more) or --all");
      let broker: Broker;
      try {
        broker = await open(url, schemes);
      } catch (e) {
        return failed(e, io);
      }
      try {
        if (action === "list") return await list(broker, destination, limit, json, io);
        const result = await replayDeadLetters(broker, destination, {
          ...(values.all === true ? { all: true } : { ids: values.id ?? [] }),
          ...(limit !== undefined && { limit }),
          ...optional("partitions", integer(values.partitions, "--partitions")),
          ...optional("timeoutMs", integer(values["timeout-ms"], "--timeout-ms")),
        });
        return report(result, json, io);
      } catch (e) {
        return failed(e, io);
      } finally {
        await broker.close();
      }
    },
  };
}

/** `weft dlq` over every broker scheme the CLI ships with. */
export const dlq: Command = dlqCommand(BROKER_SCHEMES);

async function open(url: string, schemes: BrokerSchemes): Promise<Broker> {
  try {
    return await openBroker(url, schemes);
  } catch (e) {
    if (e instanceof ConfigError) throw new UsageError(e.message);
    throw e;
  }
}

/** A broker's refusal (unreachable, cannot browse) or a bad option: said in one line, exit 2. */
function failed(e: unknown, io: Io): ExitCode {
  if (e instanceof ConfigError) throw new UsageError(e.message);
  if (!(e instanceof WeftError)) throw e;
  io.err(`weft dlq: ${e.message}\n`);
  return Exit.USAGE;
}

async function list(
  broker: Broker,
  destination: string,
  limit: number | undefined,
  json: boolean,
  io: Io,
): Promise<ExitCode> {
  const letters = await listDeadLetters(broker, destination, limit === undefined ? {} : { limit });
  if (json) {
    io.out(`${JSON.stringify({ deadLetters: letters.map(toJson) }, null, 2)}\n`);
    return Exit.OK;
  }
  if (letters.length === 0) io.out(`no dead letters in ${destination}\n`);
  for (const l of letters) io.out(`${describe(l)}\n`);
  return Exit.OK;
}

function describe(l: ListedDeadLetter): string {
  const d = l.deadLetter;
  const fields =
    d === undefined
      ? [l.letter.id, `problem=${l.problem ?? "-"}`]
      : [
          l.letter.id,
          d.original.destination,
          `group=${d.group ?? "-"}`,
          `reason=${d.reason || "-"}`,
          `attempts=${d.attempts ?? "-"}`,
          `at=${d.at === undefined ? "-" : new Date(d.at).toISOString()}`,
          `error=${JSON.stringify(d.error)}`,
        ];
  return [...fields, `body=${preview(l.letter.contentType, l.letter.body)}`].join("  ");
}

function toJson(l: ListedDeadLetter) {
  const d = l.deadLetter;
  return {
    id: l.letter.id,
    destination: d?.original.destination ?? null,
    group: d?.group ?? null,
    reason: d?.reason ?? null,
    code: d?.code ?? null,
    attempts: d?.attempts ?? null,
    error: d?.error ?? null,
    at: d?.at === undefined ? null : new Date(d.at).toISOString(),
    problem: l.problem ?? null,
    kind: l.letter.kind,
    key: l.letter.key ?? null,
    publishedAt: new Date(l.letter.publishedAt).toISOString(),
    contentType: l.letter.contentType,
    headers: d?.original.headers ?? l.letter.headers,
    bodyBytes: l.letter.body.byteLength,
    bodyPreview: preview(l.letter.contentType, l.letter.body),
  };
}

/**
 * The start of a body as people can read it: text (JSON, `text/*`) as a quoted string, anything else
 * as hex; `…` and the size when cut.
 */
export function preview(contentType: string, body: Uint8Array): string {
  const textual = /json|^text\/|xml|yaml/.test(contentType);
  const cut = body.byteLength > PREVIEW_CHARS;
  const head = body.subarray(0, textual ? PREVIEW_CHARS * 4 : PREVIEW_CHARS / 2);
  const shown = textual
    ? JSON.stringify([...new TextDecoder().decode(head)].slice(0, PREVIEW_CHARS).join(""))
    : Buffer.from(head).toString("hex");
  return cut ? `${shown}… (${body.byteLength} bytes)` : shown;
}

function report(result: ReplayResult, json: boolean, io: Io): ExitCode {
  if (json) io.out(`${JSON.stringify(result, null, 2)}\n`);
  else {
    for (const id of result.replayed) io.out(`replayed   ${id}\n`);
    for (const f of result.failed) io.out(`failed     ${f.id}  ${f.error}\n`);
    for (const id of result.notFound) io.out(`not found  ${id}\n`);
    io.out(
      `${result.replayed.length} replayed, ${result.failed.length} failed, ${result.notFound.length} not found\n`,
    );
  }
  return result.failed.length + result.notFound.length === 0 ? Exit.OK : Exit.FAILED;
}

function integer(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new UsageError(`${flag} expects a positive integer, got ${raw}`);
  return n;
}

function optional<K extends string>(key: K, value: number | undefined): { [P in K]?: number } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: number };
}
