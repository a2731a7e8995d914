// Smooths a reply that arrives in bursts. Some providers send a word at a time, others a paragraph
// every second: the pacer releases the received text at the rate it has been arriving recently, so
// the reader sees a steady flow instead of jumps and pauses, and catches up when it falls behind.

const WINDOW_MS = 2000; // the arrival rate is measured over this much recent time
const MIN_RATE = 40 / 1000; // characters per millisecond: never slower than 40 characters a second
const MAX_LAG_MS = 1200; // a backlog longer than this much reading is released faster...
const CATCH_UP_MS = 300; // ...to be gone in about this long
const DRAIN_MS = 400; // once the reply is complete, what remains is shown in about this long
const MAX_CHARS_PER_STEP = 3000; // bounds the rendering work of one frame on a huge burst

export class TextPacer {
  constructor() {
    this.text = "";
    this.shown = 0;
    this.arrivals = []; // [time, total length] pairs within WINDOW_MS
    this.draining = false;
  }

  push(delta, now = performance.now()) {
    this.text += delta;
    this.arrivals.push([now, this.text.length]);
    while (this.arrivals.length > 2 && now - this.arrivals[0][0] > WINDOW_MS) this.arrivals.shift();
  }

  /** No more text will come: release the rest quickly. */
  drain() {
    this.draining = true;
  }

  /** Show everything now (a stop, or a hidden tab where frames do not run). */
  flush() {
    this.shown = this.text.length;
  }

  get backlog() {
    return this.text.length - this.shown;
  }

  get done() {
    return this.backlog === 0;
  }

  /** Characters per millisecond that text has been arriving at lately. */
  rate(now) {
    if (this.arrivals.length === 0) return MIN_RATE;
    const [firstTime, firstLength] = this.arrivals[0];
    // The first arrival's text counts as "arrived over" a short span, so a single burst is not shown
    // at MIN_RATE while the rate is still unknown.
    const span = Math.max(now - firstTime, 250);
    const arrived = this.text.length - firstLength + (this.arrivals.length === 1 ? firstLength : 0);
    return Math.max(MIN_RATE, arrived / span);
  }

  /** Advance by `elapsed` ms; returns the text to show now. */
  step(elapsed, now = performance.now()) {
    const backlog = this.backlog;
    if (backlog > 0) {
      const rate = this.rate(now);
      let release = rate * elapsed;
      const lag = backlog / rate;
      if (lag > MAX_LAG_MS) release += (backlog - rate * MAX_LAG_MS) * Math.min(1, elapsed / CATCH_UP_MS);
      if (this.draining) release = Math.max(release, backlog * Math.min(1, elapsed / DRAIN_MS));
      this.shown += Math.min(backlog, MAX_CHARS_PER_STEP, Math.max(1, Math.round(release)));
      this.shown = this.avoidSplitPair(this.shown);
    }
    return this.text.slice(0, this.shown);
  }

  avoidSplitPair(index) {
    // Never end between the two halves of a surrogate pair (an emoji): it would render as garbage.
    const code = this.text.charCodeAt(index - 1);
    return code >= 0xd800 && code <= 0xdbff && index < this.text.length ? index + 1 : index;
  }
}
