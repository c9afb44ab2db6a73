/**
 * Status codes. The numbers are gRPC's 0–16 exactly, so a Weft status maps one-to-one onto gRPC,
 * gRPC-web and Connect, and a code read off the wire is the same number in every protocol.
 */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type Code = (typeof Code)[keyof typeof Code];
export type CodeName = keyof typeof Code;

const names: readonly CodeName[] = Object.keys(Code) as CodeName[];

/** The name of a code, e.g. `codeName(5) === "NOT_FOUND"`; unknown numbers read as `UNKNOWN`. */
export function codeName(code: number): CodeName {
  return names[code] ?? "UNKNOWN";
}

/** True when `value` is one of the seventeen codes. */
export function isCode(value: unknown): value is Code {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 16;
}
