/** Longest delay `setTimeout` honours; larger values fire after 1 ms. */
const MAX_DELAY_MS = 0x7fffffff;

/**
 * Calls `onExpire` once `Date.now()` reaches `deadline`, however far away it is: a budget beyond
 * `setTimeout`'s 24.8-day limit is waited for in steps. The timer does not keep the process alive.
 */
export function armDeadline(deadline: number, onExpire: () => void): { cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const left = deadline - Date.now();
    if (left > 0) {
      timer = setTimeout(tick, Math.min(left, MAX_DELAY_MS));
      timer.unref();
      return;
    }
    timer = undefined;
    onExpire();
  };
  const left = deadline - Date.now();
  timer = setTimeout(tick, Math.min(Math.max(0, left), MAX_DELAY_MS));
  timer.unref();
  return {
    cancel: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
