// Keyboard movement shared by lists of buttons (chats, search results).

/** Arrow keys, Home and End move focus among `selector` within `container`; true when the key was used. */
export function moveFocus(event: KeyboardEvent, container: HTMLElement, selector: string): boolean {
  const rows = [...container.querySelectorAll<HTMLElement>(selector)];
  const index = rows.indexOf(document.activeElement as HTMLElement);
  let next: number;
  switch (event.key) {
    case 'ArrowDown':
      next = index < 0 ? 0 : Math.min(rows.length - 1, index + 1);
      break;
    case 'ArrowUp':
      next = index < 0 ? rows.length - 1 : Math.max(0, index - 1);
      break;
    case 'Home':
      next = 0;
      break;
    case 'End':
      next = rows.length - 1;
      break;
    default:
      return false;
  }
  event.preventDefault();
  rows[next]?.focus();
  return true;
}
