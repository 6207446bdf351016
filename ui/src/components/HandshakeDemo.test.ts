import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor, within } from '@testing-library/svelte';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import HandshakeDemo from './HandshakeDemo.svelte';
import App from '../App.svelte';
import { fakeBackend } from '../test/fake-backend';
import { CIPHERTEXT_PREVIEW, DEMO_TEXT, REPLAY_CHECK, TAMPER_REASON, demoRun } from '../test/demo-fixture';
import type { DemoAttack } from '../lib/ipc';

interface MockOptions {
  /** Thrown by run_demo instead of answering. */
  fail?: unknown;
  /** run_demo answers only when `release()` is called. */
  hold?: boolean;
}

function mockDemo(options: MockOptions = {}) {
  const calls: unknown[] = [];
  let release: () => void = () => {};
  mockIPC(async (cmd, args) => {
    if (cmd !== 'run_demo') return null;
    calls.push(args);
    if (options.fail) throw options.fail;
    if (options.hold) await new Promise<void>((resolve) => (release = resolve));
    return demoRun({ attack: (args as { attack: DemoAttack }).attack });
  });
  return { calls, release: () => release() };
}

function open(props: { onClose?: () => void; autoplayMs?: number } = {}) {
  return render(HandshakeDemo, { onClose: () => {}, autoplayMs: 10_000, ...props });
}

const status = (n: number) => screen.getByTestId(`demo-step-${n}`).dataset.status;
const statuses = () => [1, 2, 3, 4, 5, 6, 7].map(status);

async function startRun() {
  await fireEvent.click(screen.getByTestId('demo-start'));
  return screen.findByTestId('demo-next');
}

async function next(times = 1) {
  for (let i = 0; i < times; i++) await fireEvent.click(screen.getByTestId('demo-next'));
}

afterEach(() => {
  cleanup();
  clearMocks();
});

describe('HandshakeDemo', () => {
  it('is a modal labelled "Handshake demo" that explains itself and starts with every step pending', () => {
    mockDemo();
    open();
    const dialog = screen.getByRole('dialog', { name: 'Handshake demo' });
    expect(dialog.getAttribute('aria-modal')).toBe('true');
    expect(screen.getByTestId('demo-intro').textContent).toMatch(
      /real handshake between two throwaway profiles, Alice and Bob, on a relay inside this app/,
    );
    expect(statuses()).toEqual(Array(7).fill('pending'));
    const picker = screen.getByRole('combobox', { name: 'What the relay does' }) as HTMLSelectElement;
    expect(picker).toBe(screen.getByTestId('demo-attack'));
    expect(picker.value).toBe('none');
    // Every attack the relay can play is offered.
    expect([...picker.options].map((o) => o.value)).toEqual([
      'none',
      'flip_wrapped_key',
      'substitute_known_contact',
      'substitute_first_contact',
      'replay_old_request',
      'forge_key_confirm',
      'drop_key_confirm',
      'replay_message',
    ]);
    expect(document.activeElement).toBe(screen.getByTestId('demo-start'));
    expect(screen.getByTestId('demo-step-6').textContent).toContain('Verify & unwrap');
  });

  it('Start runs the real handshake with an honest relay, showing progress meanwhile', async () => {
    const backend = mockDemo({ hold: true });
    open();
    await fireEvent.click(screen.getByTestId('demo-start'));
    const progress = await screen.findByTestId('demo-running');
    expect(progress.textContent).toMatch(/Generating Alice.s and Bob.s keys and running the handshake…/);
    expect(screen.getByTestId('demo-live').textContent).toBe(progress.textContent?.trim());
    expect((screen.getByTestId('demo-start') as HTMLButtonElement).disabled).toBe(true);
    await waitFor(() => expect(backend.calls).toEqual([{ attack: 'none' }]));

    backend.release();
    const nextButton = await screen.findByTestId('demo-next');
    expect(screen.queryByTestId('demo-running')).toBeNull();
    expect(document.activeElement).toBe(nextButton);
    expect(statuses()).toEqual(Array(7).fill('pending'));
    // Both parties' certificates head their columns.
    const alice = screen.getByTestId('demo-column-alice');
    expect(alice.textContent).toContain('CN=alice');
    expect(alice.textContent).toContain('CN=Magpie demo relay CA');
    expect(alice.textContent).toContain('a1c3 e5a1 c3e5 a1c3 …');
    expect(screen.getByTestId('demo-column-bob').textContent).toContain('CN=bob');
    expect(screen.getByTestId('demo-run-info').textContent).toContain('2.4 s');
  });

  it('Next reveals one step at a time, on the acting side, with the envelope on the wire', async () => {
    mockDemo();
    open();
    await startRun();

    await next();
    expect(statuses()).toEqual(['passed', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
    expect(screen.getByTestId('demo-step-1').getAttribute('aria-current')).toBe('step');
    const card1 = within(screen.getByTestId('demo-column-alice')).getByTestId('demo-card-1');
    expect(card1.textContent).toContain('Alice signs a chat request for bob');
    expect(card1.textContent).toMatch(/✓\s*Passed: Bob verified alice's certificate chain to the relay's CA/);
    const envelope1 = within(screen.getByTestId('demo-column-wire')).getByTestId('demo-envelope-1');
    expect(envelope1.textContent).toContain('Chat request');
    expect(envelope1.textContent).toContain('2,214 bytes');
    expect(envelope1.textContent).toContain('7b2276223a312c22');
    expect(screen.getByTestId('demo-live').textContent).toMatch(/^Step 1 of 7, Request: passed\./);
    expect(screen.queryByTestId('demo-card-2')).toBeNull();

    await next();
    expect(status(2)).toBe('passed');
    expect(status(3)).toBe('pending');
    expect(within(screen.getByTestId('demo-column-bob')).getByTestId('demo-card-2').textContent).toContain(
      'ephemeral X25519',
    );
    expect(screen.getByTestId('demo-envelope-2').classList.contains('rtl')).toBe(true);
    expect(screen.getByTestId('demo-envelope-2').textContent).toMatch(/alice ← bob.*from bob to alice/s);

    await next();
    expect(status(3)).toBe('passed');
    expect(screen.getByTestId('demo-no-envelope').textContent).toMatch(/Step 3 relayed no envelope/);
  });

  it('shows a shortened value in full on request', async () => {
    mockDemo();
    open();
    await startRun();
    await next();
    const card = screen.getByTestId('demo-card-1');
    const toggle = within(card).getByRole('button', { name: 'Show all of Request signature (RSA-PSS)' });
    expect(card.textContent).toContain('… (384 bytes)');
    await fireEvent.click(toggle);
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    const full = demoRun().steps[0]!.fields[2]!.full!;
    expect(within(card).getAllByTestId('demo-field').map((f) => f.textContent)).toContain(full);
  });

  it('ends with the same message as plaintext on both sides and ciphertext on the wire', async () => {
    mockDemo();
    open();
    await startRun();
    await next(6);
    expect(screen.queryByTestId('demo-ending')).toBeNull();
    screen.getByTestId('demo-next').focus();
    await next();

    expect(statuses()).toEqual(Array(7).fill('passed'));
    const ending = screen.getByTestId('demo-ending');
    expect(within(ending).getByTestId('demo-plaintext-alice').textContent).toBe(DEMO_TEXT);
    expect(within(ending).getByTestId('demo-plaintext-bob').textContent).toBe(DEMO_TEXT);
    const cipher = within(ending).getByTestId('demo-ciphertext').textContent ?? '';
    expect(cipher).toContain(CIPHERTEXT_PREVIEW);
    expect(cipher).toContain('181 bytes');
    expect(cipher).not.toContain(DEMO_TEXT);
    expect(screen.queryByTestId('demo-failure')).toBeNull();
    expect((screen.getByTestId('demo-next') as HTMLButtonElement).disabled).toBe(true);
    await waitFor(() => expect(document.activeElement).toBe(screen.getByTestId('demo-restart')));
    expect(screen.getByTestId('demo-wire-log').textContent).toContain('5 envelopes');
  });

  it('with a flipped bit, Bob rejects the key transfer at step 6 and the reason is shown', async () => {
    const backend = mockDemo();
    open();
    const picker = screen.getByTestId('demo-attack') as HTMLSelectElement;
    await fireEvent.change(picker, { target: { value: 'flip_wrapped_key' } });
    expect(screen.getByTestId('demo-attack-help').textContent).toContain('flips one bit in the wrapped session key');
    await startRun();
    expect(backend.calls).toEqual([{ attack: 'flip_wrapped_key' }]);
    expect(screen.getByTestId('demo-run-info').textContent).toContain('relay attack: Flip a bit in the wrapped key');

    await next(4);
    const transfer = screen.getByTestId('demo-envelope-4');
    expect(within(transfer).getByTestId('demo-wire-action').textContent).toBe('tampered by the relay');
    expect(screen.queryByTestId('demo-verdict')).toBeNull();
    await next(2);

    expect(statuses()).toEqual(['passed', 'passed', 'passed', 'passed', 'passed', 'failed', 'not_reached']);
    // The rail shows the cause; the whole sentence is its tooltip (and the failure panel's).
    expect(screen.getByTestId('demo-rail-reason').textContent).toBe(
      'Its signature does not match what alice signed (the message was changed on the way)',
    );
    expect(screen.getByTestId('demo-step-6').getAttribute('title')).toBe(TAMPER_REASON);
    const card6 = within(screen.getByTestId('demo-column-bob')).getByTestId('demo-card-6');
    const failedCheck = within(within(card6).getByRole('list', { name: 'Checks' })).getByRole('listitem');
    expect(failedCheck.textContent?.replace(/\s+/g, ' ').trim()).toBe(`✗ Failed: ${TAMPER_REASON}`);
    expect(failedCheck.classList.contains('bad')).toBe(true);
    expect(screen.getByTestId('demo-failure').textContent).toContain(TAMPER_REASON);
    expect(screen.queryByTestId('demo-ending')).toBeNull();
    expect(screen.queryByTestId('demo-card-7')).toBeNull();
    expect((screen.getByTestId('demo-next') as HTMLButtonElement).disabled).toBe(true);
    expect(screen.getByTestId('demo-live').textContent).toContain(TAMPER_REASON);
    // The verdict names who stopped it, the check, and the values it compared side by side.
    const verdict = screen.getByTestId('demo-verdict');
    expect(within(verdict).getByRole('heading').textContent).toBe('Caught: Bob stopped it at step 6');
    expect(within(verdict).getByTestId('demo-verdict-check').textContent).toBe('Alice’s signature over the transcript');
    expect(verdict.textContent).toContain('Wrapped K as Alice sent it');
    expect(verdict.textContent).toContain('a6f3a7f3…');
    // Heard as well as seen: the live region ends with the verdict.
    expect(screen.getByTestId('demo-live').textContent).toContain(
      'Caught: Bob stopped it at step 6. Bob refused the key transfer and kept nothing of it.',
    );
  });

  it('after a replayed message, the chat still ends and the verdict follows it', async () => {
    mockDemo();
    open();
    await fireEvent.change(screen.getByTestId('demo-attack'), { target: { value: 'replay_message' } });
    await startRun();
    await next(6);
    expect(screen.queryByTestId('demo-verdict')).toBeNull();
    await next();
    expect(statuses()).toEqual(Array(7).fill('passed'));
    expect(screen.getByTestId('demo-ending')).toBeTruthy();
    const verdict = screen.getByTestId('demo-verdict');
    expect(within(verdict).getByRole('heading').textContent).toBe('Caught: Bob stopped it');
    expect(within(verdict).getByTestId('demo-verdict-check').textContent).toBe(REPLAY_CHECK);
    expect(screen.getByTestId('demo-wire-log').textContent).toContain('replayed by the relay');
  });

  it('Restart runs the handshake again with the attack chosen now', async () => {
    const backend = mockDemo();
    open();
    await startRun();
    await next(3);
    expect(screen.queryByTestId('demo-restart-hint')).toBeNull();
    await fireEvent.change(screen.getByTestId('demo-attack'), { target: { value: 'flip_wrapped_key' } });
    expect(screen.getByTestId('demo-restart-hint')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('demo-restart'));
    await screen.findByTestId('demo-next');
    expect(backend.calls).toEqual([{ attack: 'none' }, { attack: 'flip_wrapped_key' }]);
    expect(statuses()).toEqual(Array(7).fill('pending'));
    expect(screen.getByTestId('demo-run-info').textContent).toContain('relay attack');
  });

  it('Auto-play reveals the steps one after another and stops at the end', async () => {
    mockDemo();
    open({ autoplayMs: 15 });
    await startRun();
    const autoplay = screen.getByTestId('demo-autoplay');
    await fireEvent.click(autoplay);
    expect(status(1)).toBe('passed');
    expect(autoplay.textContent).toBe('Pause');
    await waitFor(() => expect(status(7)).toBe('passed'));
    expect(screen.getByTestId('demo-ending')).toBeTruthy();
    expect(autoplay.textContent).toBe('Auto-play');
    expect((autoplay as HTMLButtonElement).disabled).toBe(true);
  });

  it('Pause stops auto-play', async () => {
    mockDemo();
    open({ autoplayMs: 30 });
    await startRun();
    const autoplay = screen.getByTestId('demo-autoplay');
    await fireEvent.click(autoplay);
    await fireEvent.click(autoplay);
    expect(autoplay.textContent).toBe('Auto-play');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(statuses()).toEqual(['passed', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
  });

  it('explains a failed run in words and offers to try again', async () => {
    mockDemo({ fail: { code: 'internal', message: 'the demo relay did not start' } });
    open();
    await fireEvent.click(screen.getByTestId('demo-start'));
    const alert = await screen.findByTestId('demo-error');
    expect(alert.getAttribute('role')).toBe('alert');
    expect(alert.textContent).toContain('Magpie hit an internal problem: The demo relay did not start.');
    expect(alert.textContent).not.toContain('{');
    expect(screen.getByTestId('demo-start').textContent).toContain('Try again');
  });

  it('closes with Escape and with the Close button', async () => {
    mockDemo();
    let closed = 0;
    open({ onClose: () => closed++ });
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(closed).toBe(1);
    await fireEvent.click(screen.getByTestId('demo-close'));
    expect(closed).toBe(2);
  });
});

describe('HandshakeDemo in the app', () => {
  function startApp() {
    const backend = fakeBackend({
      profiles: ['ana'],
      overrides: { run_demo: (args) => demoRun({ attack: args.attack as DemoAttack }) },
    });
    mockIPC(backend.handler, { shouldMockEvents: true });
    render(App);
    return backend;
  }

  it('opens from the empty conversation, runs, and Escape returns to the app', async () => {
    const backend = startApp();
    const opener = await screen.findByTestId('demo-open');
    expect(opener.textContent).toBe('See how the handshake works');
    opener.focus();
    await fireEvent.click(opener);
    screen.getByRole('dialog', { name: 'Handshake demo' });
    await startRun();
    expect(backend.argsOf('run_demo')).toEqual([{ attack: 'none' }]);
    await fireEvent.keyDown(window, { key: 'Escape' });
    expect(screen.queryByTestId('handshake-demo')).toBeNull();
    expect(document.activeElement).toBe(opener);
  });

  it('opens from the sidebar', async () => {
    startApp();
    await fireEvent.click(await screen.findByTestId('demo-menu'));
    expect(screen.getByTestId('handshake-demo')).toBeTruthy();
    await fireEvent.click(screen.getByTestId('demo-close'));
    expect(screen.queryByTestId('handshake-demo')).toBeNull();
  });
});
