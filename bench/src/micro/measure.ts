/**
 * The timing loop the micro-benchmarks share: calibrates a batch to about 50 ms, warming the JIT on
 * the way, then times `rounds` batches and returns the fastest one's nanoseconds per operation (the
 * figure least disturbed by other work on the machine).
 */
export function nsPerOp(op: () => unknown, rounds = 9, budgetNs = 200_000_000n): number {
  let sink = 0;
  const batch = (n: number): bigint => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) if (op() !== undefined) sink++;
    return process.hrtime.bigint() - start;
  };
  let n = 100;
  while (batch(n) < budgetNs / 4n) n *= 2;
  const perOp: number[] = [];
  for (let r = 0; r < rounds; r++) perOp.push(Number(batch(n)) / n);
  if (sink === 0) throw new Error("the measured operation returned nothing");
  return Math.min(...perOp);
}

/**
 * What a batch is timed by: `wall` (elapsed time) or `cpu` (this process's user + system CPU time,
 * which a busy machine disturbs less than elapsed time: waiting for a core does not count).
 */
export type Clock = "wall" | "cpu";

function nowNs(clock: Clock): bigint {
  if (clock === "wall") return process.hrtime.bigint();
  const { user, system } = process.cpuUsage();
  return BigInt(user + system) * 1000n;
}

/**
 * `nsPerOp` for an operation that completes asynchronously (a call through a client): the same
 * calibration to about 50 ms per batch, operations awaited one after the other, and the fastest of
 * `rounds` batches in nanoseconds per operation, by `clock` (default `wall`).
 */
export async function nsPerAsyncOp(
  op: () => Promise<unknown>,
  rounds = 9,
  budgetNs = 200_000_000n,
  clock: Clock = "wall",
): Promise<number> {
  const batch = async (n: number): Promise<bigint> => {
    const start = nowNs(clock);
    for (let i = 0; i < n; i++) await op();
    return nowNs(clock) - start;
  };
  let n = 100;
  while ((await batch(n)) < budgetNs / 4n) n *= 2;
  const perOp: number[] = [];
  for (let r = 0; r < rounds; r++) perOp.push(Number(await batch(n)) / n);
  return Math.min(...perOp);
}

/**
 * The fastest ns per operation of each of `ops` over `passes` interleaved passes of `nsPerAsyncOp`
 * (default 3), so that no operation gets the warm JIT or a quiet machine alone.
 */
export async function fastestOf(
  ops: ReadonlyArray<() => Promise<unknown>>,
  passes = 3,
  clock: Clock = "wall",
): Promise<number[]> {
  const best = ops.map(() => Number.POSITIVE_INFINITY);
  for (let pass = 0; pass < passes; pass++) {
    for (let i = 0; i < ops.length; i++)
      best[i] = Math.min(best[i]!, await nsPerAsyncOp(ops[i]!, 9, 200_000_000n, clock));
  }
  return best;
}
