// Milestones for scripts/perf-app.sh. They do nothing unless the script started the app (perfOpenChat is null).
import { perfMark, perfOpenChat } from './ipc';

/** Wall-clock times (ms since the epoch) of startup moments, reported with the chat list mark; `null` after. */
let moments: [string, number][] | null = [['page', performance.timeOrigin]];

/** Notes that startup reached `name` (the script prints where the time went). Later calls are ignored. */
export function moment(name: string): void {
  moments?.push([name, performance.timeOrigin + performance.now()]);
}

/** Resolves after the browser has painted twice: what was rendered is on screen. */
export function afterPaint(): Promise<void> {
  return new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
}

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => requestAnimationFrame(resolve));
  }
  return true;
}

/** Call once the chat list is rendered: marks it, opens the script's chat and marks when its messages are drawn. */
export async function reportPerfMarks(openChat: (peer: string) => void): Promise<void> {
  // Asked while the list paints, so the measurement adds no round trip of its own. Builds without the perf
  // feature (every installed one) do not have the command: nothing to report then.
  const asked = perfOpenChat().catch(() => null);
  await afterPaint();
  const startup = moments ?? [];
  moments = null;
  const peer = await asked;
  if (peer === null) return;
  await perfMark('chat_list');
  for (const [name, wallMs] of startup) await perfMark(`at_${name}`, wallMs);
  const started = performance.now();
  openChat(peer);
  const drawn = await until(() => document.querySelector('[data-testid="message-body"]') !== null, 30_000);
  if (!drawn) return;
  await afterPaint();
  await perfMark('open_chat', performance.now() - started);
}
