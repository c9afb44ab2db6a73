import { defineService, rawBytes, unary } from "@weft/core";

/** CPU time the overload server's handler burns per call, in milliseconds. */
export const WORK_MS = 1;

/** The overload benchmark's service: one unary method doing `WORK_MS` of CPU-bound work. */
export const Work = defineService("bench.Work", {
  work: unary(rawBytes, rawBytes, { rpcName: "Work" }),
});
