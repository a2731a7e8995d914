// The parts of the page around the conversation: the transcript that follows a growing reply, the
// conversation drawer of narrow screens, and the screen reader announcements.

const PINNED_SLACK_PX = 80; // this close to the bottom, the transcript follows a growing reply

/** Keeps the end of a growing reply in view, unless the reader scrolled up to read something else. */
export class ScrollFollower {
  constructor(scroller, jumpButton) {
    this.scroller = scroller;
    this.jumpButton = jumpButton;
    this.pinned = true;
    scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    jumpButton.addEventListener("click", () => this.follow(true));
  }

  onScroll() {
    const { scrollTop, clientHeight, scrollHeight } = this.scroller;
    this.pinned = scrollTop + clientHeight >= scrollHeight - PINNED_SLACK_PX;
    this.jumpButton.hidden = this.pinned;
  }

  follow(force = false) {
    if (!force && !this.pinned) return;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.pinned = true;
    this.jumpButton.hidden = true;
  }
}

/** The conversation list as a drawer on narrow screens; the rest of the page is inert while it is open. */
export class Drawer {
  constructor(root, { panel, toggle, scrim, main, query = "(max-width: 800px)" }) {
    Object.assign(this, { root, panel, toggle, scrim, main });
    this.narrow = window.matchMedia(query);
    toggle.addEventListener("click", () => this.set(!this.open));
    scrim.addEventListener("click", () => this.set(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.open) this.set(false);
    });
    this.narrow.addEventListener("change", () => this.set(false));
  }

  get open() {
    return this.root.classList.contains("sidebar-open");
  }

  set(open) {
    const wasOpen = this.open;
    open = open && this.narrow.matches;
    this.root.classList.toggle("sidebar-open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
    this.scrim.hidden = !open;
    this.main.inert = open;
    if (open) this.panel.querySelector("a, button")?.focus();
    else if (wasOpen) this.toggle.focus();
  }
}

/** Says things to screen reader users: politely, or at once for errors. */
export class Announcer {
  constructor(polite, urgent) {
    this.polite = polite;
    this.urgent = urgent;
  }

  say(text, urgent = false) {
    const region = urgent ? this.urgent : this.polite;
    region.textContent = "";
    setTimeout(() => (region.textContent = text), 50); // a change, even when the text repeats
  }
}
