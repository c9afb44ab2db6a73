/**
 * Resolves once `check()` is true, polling every 5 ms (for a condition no event announces); rejects
 * with "timed out waiting for <what>" after `waitMs`.
 */
export async function until(check: () => boolean, what: string, waitMs: number): Promise<void> {
  const end = Date.now() + waitMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
