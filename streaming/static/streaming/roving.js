// One Tab stop for a long list (a roving tabindex): Tab reaches the list once, at the row last used
// (or the current one); the arrow keys move between rows (Up, Down, Home, End) and along a row to its
// buttons (Right, Left). Each row is an element with `data-id`; its first focusable is its main control.

const FOCUSABLE = "a[href], button:not([disabled]), input";

export class RovingList {
  /** `container` holds the rows; `rowSelector` finds them; `shortcuts[key](row)` handles more keys. */
  constructor(container, rowSelector, shortcuts = {}) {
    this.container = container;
    this.rowSelector = rowSelector;
    this.shortcuts = shortcuts;
    this.current = null; // the id of the row that holds the Tab stop
    container.addEventListener("keydown", (event) => this.onKey(event));
    container.addEventListener("focusin", (event) => {
      const row = event.target.closest(rowSelector);
      if (row) this.hold(row.dataset.id);
    });
  }

  rows() {
    return [...this.container.querySelectorAll(this.rowSelector)];
  }

  /** Give the Tab stop to the row `id` (the first row when it is not listed), and none to the rest. */
  hold(id) {
    const rows = this.rows();
    const keeper = rows.find((row) => row.dataset.id === id) ?? rows[0];
    this.current = keeper?.dataset.id ?? null;
    for (const row of rows) {
      for (const control of row.querySelectorAll(FOCUSABLE)) control.tabIndex = -1;
    }
    const main = keeper?.querySelector(FOCUSABLE);
    if (main) main.tabIndex = 0;
  }

  onKey(event) {
    const row = event.target.closest(this.rowSelector);
    if (!row || event.altKey || event.ctrlKey || event.metaKey || event.target.matches("input")) return;
    const shortcut = this.shortcuts[event.key];
    const moved = shortcut ? (shortcut(row), true) : this.move(row, event.target, event.key);
    if (moved) event.preventDefault();
  }

  move(row, from, key) {
    const rows = this.rows();
    const at = rows.indexOf(row);
    const controls = [...row.querySelectorAll(FOCUSABLE)];
    const along = controls.indexOf(from);
    let target = null;
    if (key === "ArrowDown") target = rows[at + 1];
    else if (key === "ArrowUp") target = rows[at - 1];
    else if (key === "Home") target = rows[0];
    else if (key === "End") target = rows[rows.length - 1];
    else if (key === "ArrowRight") return focus(controls[along + 1]);
    else if (key === "ArrowLeft") return focus(controls[along - 1]);
    else return false;
    return focus(target?.querySelector(FOCUSABLE));
  }
}

function focus(element) {
  if (!element) return true; // at an end: the key does nothing, as in any list
  element.focus();
  element.scrollIntoView({ block: "nearest" });
  return true;
}
