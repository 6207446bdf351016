// Behaviour the pop-up menus share: Escape closes and gives focus back to the trigger, the arrow keys move
// between items (wrapping), Tab and a click outside close without moving focus.

export interface MenuOptions {
  /** The button that opens the menu; clicks on it are not "outside" (it toggles the menu itself). */
  trigger: HTMLElement | undefined;
  /** Hides the menu; focus is handled here. */
  onClose: () => void;
  /** The window event that counts as a click outside; read once, when the menu opens. */
  outside: 'click' | 'pointerdown';
}

/** Svelte action for the element with role="menu", mounted only while the menu is open. */
export function menu(node: HTMLElement, options: MenuOptions) {
  let current = options;
  const outsideEvent = options.outside;

  function onKeydown(event: KeyboardEvent) {
    const items = [...node.querySelectorAll<HTMLElement>('[role="menuitem"]')];
    const index = items.indexOf(document.activeElement as HTMLElement);
    if (event.key === 'Escape') {
      event.preventDefault();
      // Only the menu closes, not whatever else listens for Escape (the app's sidebar).
      event.stopPropagation();
      current.onClose();
      current.trigger?.focus();
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      items[(index + step + items.length) % items.length]?.focus();
    } else if (event.key === 'Tab') {
      current.onClose();
    }
  }

  function onOutside(event: Event) {
    const target = event.target as Node | null;
    if (target && (node.contains(target) || current.trigger?.contains(target))) return;
    current.onClose();
  }

  node.addEventListener('keydown', onKeydown);
  window.addEventListener(outsideEvent, onOutside);

  return {
    update(next: MenuOptions) {
      current = next;
    },
    destroy() {
      node.removeEventListener('keydown', onKeydown);
      window.removeEventListener(outsideEvent, onOutside);
    },
  };
}
