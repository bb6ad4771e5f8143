/**
 * A timer chain that marks each time the event loop reaches its timers: `now()` is the number of
 * marks so far, so work that notes it can tell how much of it fell between two turns.
 */
export function timerTurns(): { readonly now: () => number; stop(): void } {
  let turn = 0;
  let ticking = true;
  const tick = (): void => {
    turn += 1;
    if (ticking) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  return { now: () => turn, stop: () => (ticking = false) };
}
