// Idle time in the window: what "Lock after being idle" counts.

const ACTIVITY = ['keydown', 'pointerdown', 'pointermove', 'wheel', 'touchstart'] as const;

/** Calls `onIdle` once the window has had no input for `minutes` (again after the next input and as long again).
 *  Returns the function that stops watching. */
export function watchIdle(minutes: number, onIdle: () => void, target: Window = window): () => void {
  const wait = minutes * 60_000;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const restart = () => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onIdle();
    }, wait);
  };
  for (const type of ACTIVITY) target.addEventListener(type, restart, { passive: true, capture: true });
  restart();
  return () => {
    if (timer !== null) clearTimeout(timer);
    for (const type of ACTIVITY) target.removeEventListener(type, restart, { capture: true });
  };
}
