/**
 * Server host process of the overload benchmark: `node overload/server.ts <none|shed|reject|answer>`.
 * A Weft server whose one method burns `WORK_MS` of CPU per call (a busy loop), with no admission
 * control (`none`), with `shedder()` at its door (`shed`), or with a door that refuses every call
 * (`reject`, what one rejection costs alone); or whose method answers at once, with no work and no
 * admission (`answer`: what any answer costs, the floor a rejection is judged against). Its IPC `cpu` reply also carries `handled` (handler
 * runs) and `rejected` (calls refused at the door) since the process started.
 */
import { type CallAdmission, Code, createServer, Reason, WeftError } from "@weft/core";
import { shedder } from "@weft/resilience";
import { hostOverIpc } from "../host.ts";
import { WORK_MS, Work } from "./work.ts";

const MODES = ["none", "shed", "reject", "answer"] as const;
export type OverloadMode = (typeof MODES)[number];

const mode = MODES.find((m) => m === process.argv[2]);
if (mode === undefined) {
  process.stderr.write(`usage: overload/server.ts <${MODES.join("|")}>\n`);
  process.exit(2);
}

let handled = 0;
let rejected = 0;
const shed = mode === "shed" ? shedder() : undefined;
// one error for every call: what is measured is the door's rejection, not the making of an error
// (the shedder makes its own without a stack trace, about a microsecond)
const refused = new WeftError(Code.RESOURCE_EXHAUSTED, "refused", { reason: Reason.OVERLOADED });
const refuseAll: CallAdmission = {
  admit: () => refused,
  finished: () => {},
};
const inner = mode === "shed" ? shed : mode === "reject" ? refuseAll : undefined;
/** The mode's admission, counting what it refuses. */
const admission: CallAdmission | undefined =
  inner === undefined
    ? undefined
    : {
        admit(path, headers, arrivedAt) {
          const error = inner.admit(path, headers, arrivedAt);
          if (error !== undefined) rejected++;
          return error;
        },
        finished: (durationMs) => inner.finished(durationMs),
      };

const server = createServer(admission === undefined ? {} : { admission });
server.register(Work, {
  work: (request: Uint8Array) => {
    handled++;
    if (mode === "answer") return request;
    const until = performance.now() + WORK_MS;
    while (performance.now() < until) {
      // the handler's CPU-bound work
    }
    return request;
  },
});
const { port } = await server.listen({ host: "127.0.0.1", port: 0 });
hostOverIpc(
  {
    port,
    close: async () => {
      shed?.close();
      await server.shutdown({ timeoutMs: 1000 });
    },
  },
  () => {
    const stats = shed?.stats();
    return stats === undefined
      ? { handled, rejected }
      : {
          handled,
          rejected,
          utilization: Math.round(stats.utilization * 100) / 100,
        };
  },
);
