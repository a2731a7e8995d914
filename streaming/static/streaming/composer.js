// The message box and what it says back: how Enter behaves (send on a keyboard, a new line on a touch
// screen, where Shift+Enter is out of reach and the Send button is at hand), a note when a message
// cannot go yet, and why a message was refused, with the text kept in the box to fix and send again.

import { make } from "./dom.js";

const NOTE_MS = 6000; // a note goes away after this long; an error stays until the text changes
const HINTS = {
  keyboard: "Enter to send, Shift+Enter for a new line",
  touch: "Enter for a new line; tap Send to send",
};

export class Composer {
  /**
   * `elements`: form, prompt, hint, status (a polite live region by the box), send and stop buttons.
   * `handlers`: submit(), stop().
   */
  constructor(elements, handlers) {
    Object.assign(this, elements);
    this.handlers = handlers;
    this.touch = window.matchMedia("(pointer: coarse)");
    this.touch.addEventListener("change", () => this.showHint());
    this.showHint();
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      handlers.submit();
    });
    this.prompt.addEventListener("keydown", (event) => this.onKey(event));
    this.prompt.addEventListener("input", () => {
      this.resize();
      this.clearError();
    });
  }

  /** The composer of the chat page's template. */
  static fromPage(handlers) {
    const $ = (id) => document.getElementById(id);
    const [form, prompt, hint, status] = ["composer", "prompt", "composer-hint", "composer-status"].map($);
    return new Composer({ form, prompt, hint, status, send: $("send"), stop: $("stop") }, handlers);
  }

  /** Whether Enter makes a new line (a touch screen) rather than sending. */
  get enterIsNewLine() {
    return this.touch.matches;
  }

  showHint() {
    this.hint.textContent = this.enterIsNewLine ? HINTS.touch : HINTS.keyboard;
    this.prompt.enterKeyHint = this.enterIsNewLine ? "enter" : "send";
  }

  onKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !this.enterIsNewLine) {
      event.preventDefault();
      this.handlers.submit();
    } else if (event.key === "Escape") {
      if (this.handlers.stop()) event.preventDefault();
    }
  }

  get text() {
    return this.prompt.value;
  }

  /** Empty the box (the message is on its way). */
  clear() {
    this.prompt.value = "";
    this.resize();
    this.clearError();
  }

  /** Put a message that did not go back in the box, unless something new was typed meanwhile. */
  restore(text) {
    if (text && !this.prompt.value.trim()) {
      this.prompt.value = text;
      this.resize();
    }
  }

  fill(text) {
    this.prompt.value = text;
    this.resize();
    this.prompt.focus();
  }

  resize() {
    this.prompt.style.height = "auto";
    this.prompt.style.height = `${Math.min(this.prompt.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  /** A short, polite note by the box (a message that cannot go yet), gone after a few seconds. */
  note(text) {
    clearTimeout(this.noteTimer);
    const note = make("p", "composer-note", text);
    this.status.replaceChildren(note);
    this.noteTimer = setTimeout(() => note.remove(), NOTE_MS);
  }

  /**
   * Why the server refused a message: its sentence, and what can be done (`link`: {href, text};
   * `detail`: a sentence more). It stays until the text is changed or sent.
   */
  error(message, { link = null, detail = "" } = {}) {
    clearTimeout(this.noteTimer);
    const box = make("div", "composer-error");
    box.id = "composer-error";
    box.setAttribute("role", "alert");
    box.append(make("p", "", [message, detail].filter(Boolean).join(" ")));
    if (link) {
      const anchor = make("a", "composer-error-link", link.text);
      anchor.href = link.href;
      box.append(anchor);
    }
    this.status.replaceChildren(box);
    this.prompt.setAttribute("aria-invalid", "true");
    this.prompt.setAttribute("aria-describedby", `${this.hint.id} composer-error`);
  }

  clearError() {
    if (!this.prompt.hasAttribute("aria-invalid")) return;
    this.status.querySelector(".composer-error")?.remove();
    this.prompt.removeAttribute("aria-invalid");
    this.prompt.setAttribute("aria-describedby", this.hint.id);
  }

  /** Send or Stop, as a reply streams or not; the focus moves with the button that was pressed. */
  setStreaming(streaming) {
    const stopFocused = document.activeElement === this.stop;
    const sendFocused = document.activeElement === this.send;
    this.send.hidden = streaming;
    this.stop.hidden = !streaming;
    if (streaming && sendFocused) this.stop.focus();
    if (!streaming && stopFocused) this.send.focus();
  }
}
