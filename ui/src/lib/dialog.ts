// Behaviour every modal dialog shares: focus the first control, keep Tab inside the top-most dialog, Escape closes
// it, and focus goes back where it was when the dialog closes.

export interface DialogOptions {
  onClose: () => void;
  /** A selector for the element to focus first; otherwise the first focusable control. */
  initialFocus?: string;
}

const FOCUSABLE = [
  'a[href]',
  'button:not([disabled])',
  'input:not([disabled]):not([type="hidden"])',
  'select:not([disabled])',
  'textarea:not([disabled])',
  '[tabindex]:not([tabindex="-1"])',
].join(',');

/** Open dialogs, oldest first: Escape closes only the last. */
const stack: HTMLElement[] = [];

export function focusableIn(node: HTMLElement): HTMLElement[] {
  return Array.from(node.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((el) => !el.closest('[inert]'));
}

/** Svelte action for the element with role="dialog". */
export function modalDialog(node: HTMLElement, options: DialogOptions) {
  let current = options;
  const returnFocusTo = document.activeElement as HTMLElement | null;
  stack.push(node);

  const first = current.initialFocus ? node.querySelector<HTMLElement>(current.initialFocus) : null;
  (first ?? focusableIn(node)[0] ?? node).focus();

  // On the window, so that Tab is kept inside even when focus is outside the dialog (on the page behind it).
  function onWindowKeydown(event: KeyboardEvent) {
    if (stack[stack.length - 1] !== node) return;
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopImmediatePropagation();
      current.onClose();
    } else if (event.key === 'Tab') {
      keepTabInside(event);
    }
  }

  function keepTabInside(event: KeyboardEvent) {
    const controls = focusableIn(node);
    if (controls.length === 0) {
      event.preventDefault();
      return;
    }
    const firstControl = controls[0]!;
    const lastControl = controls[controls.length - 1]!;
    const active = document.activeElement;
    if (event.shiftKey && (active === firstControl || !node.contains(active))) {
      event.preventDefault();
      lastControl.focus();
    } else if (!event.shiftKey && (active === lastControl || !node.contains(active))) {
      event.preventDefault();
      firstControl.focus();
    }
  }

  window.addEventListener('keydown', onWindowKeydown, true);

  return {
    update(next: DialogOptions) {
      current = next;
    },
    destroy() {
      window.removeEventListener('keydown', onWindowKeydown, true);
      const index = stack.lastIndexOf(node);
      if (index >= 0) stack.splice(index, 1);
      if (returnFocusTo && document.contains(returnFocusTo)) returnFocusTo.focus();
    },
  };
}

/** Whether any modal dialog is open (keyboard shortcuts of the window pause meanwhile). */
export function dialogOpen(): boolean {
  return stack.length > 0;
}
