/**
 * `:timeout`, the deadline budget a REQUEST carries (docs/protocol.md §11): whole milliseconds as 1 to
 * 12 ASCII digits. Weft's REST front end reads its timeout header with the same rule.
 */

import { pseudoKeyAt } from "./decode.ts";
import { HEADER_SIZE, PseudoKey } from "./frame.ts";

/**
 * The largest budget `:timeout` carries: 999,999,999,999 ms (12 digits, about 31.7 years). Far beyond
 * any real deadline, it is exact in a double and fits a signed 64-bit count of nanoseconds, so every
 * language's clock types hold it. Senders clamp a larger budget to it; receivers refuse more digits.
 */
export const MAX_TIMEOUT_MS = 999_999_999_999;

/** Most digits a `:timeout` value has. */
const MAX_DIGITS = 12;

/**
 * `:timeout`'s value for a remaining budget of `budgetMs` whole milliseconds (greater than 0), clamped
 * to `MAX_TIMEOUT_MS`. The sender's own timer keeps its real deadline.
 */
export function encodeTimeout(budgetMs: number): string {
  // calls made with one budget send the same few values: the last one is kept as text
  if (budgetMs !== lastBudgetMs) {
    lastBudgetMs = budgetMs;
    lastTimeout = String(Math.min(budgetMs, MAX_TIMEOUT_MS));
  }
  return lastTimeout;
}

let lastBudgetMs = Number.NaN;
let lastTimeout = "";

/**
 * Reads a `:timeout` value: 1 to 12 ASCII digits (leading zeros allowed), nothing else (no sign,
 * space, fraction or unit). `undefined` when it is malformed: the call is then refused with
 * INVALID_ARGUMENT, reason `BAD_TIMEOUT`. 0 is well-formed (an already expired budget).
 */
export function decodeTimeout(value: string): number | undefined {
  const n = value.length;
  if (n === 0 || n > MAX_DIGITS) return undefined;
  let ms = 0;
  for (let i = 0; i < n; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    ms = ms * 10 + d;
  }
  return ms;
}

/**
 * Lowers the `:timeout` an encoded REQUEST carries (`head`: the frame's header and metadata block,
 * as `encodeOutFrame` wrote it) to `budgetMs`, in place: the digits are rewritten with the same
 * width, zero-padded (leading zeros are allowed), so no other byte of the frame moves. For a REQUEST
 * that waited in its sender's queue after the budget was computed. A budget of 0 or less writes
 * zeros (the server answers DEADLINE_EXCEEDED); one not below the present value changes nothing.
 * Returns whether the value was rewritten; false too when the frame has no `:timeout`.
 */
export function lowerTimeout(head: Buffer, budgetMs: number): boolean {
  const end = HEADER_SIZE + head.readUInt32BE(12);
  for (let at = HEADER_SIZE; at + 4 <= end; ) {
    const keyLength = head.readUInt16BE(at);
    const valueAt = at + 4 + keyLength;
    const valueLength = head.readUInt16BE(valueAt - 2);
    if (pseudoKeyAt(head, at + 2, keyLength) === PseudoKey.timeout) {
      const present = decodeTimeout(head.toString("latin1", valueAt, valueAt + valueLength));
      const budget = Math.max(0, Math.floor(budgetMs));
      if (present === undefined || budget >= present) return false;
      head.write(String(budget).padStart(valueLength, "0"), valueAt, valueLength, "latin1");
      return true;
    }
    at = valueAt + valueLength;
  }
  return false;
}
