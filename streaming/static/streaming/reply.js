// One message in the transcript. An assistant reply takes the chunks of the UI message stream as they
// come, paces its text, renders it on animation frames, and shows its status, usage, cost and timings.

import { actionButton as button, make } from "./dom.js";
import { duration, tokens as count, usd } from "./format.js";
import { MarkdownView, renderMarkdown } from "./markdown.js";
import { TextPacer } from "./pacer.js";
import { isToolChunk, ToolCards } from "./tools.js";

const STATUS_LABELS = {
  waiting: "Waiting for the model",
  streaming: "Streaming",
  stopping: "Stopping",
  complete: "Complete",
  cancelled: "Stopped",
  error: "Error",
  interrupted: "Interrupted",
  awaiting_approval: "Waiting for your approval",
};
const MIN_RENDER_INTERVAL_MS = 40;
const MAX_RENDER_INTERVAL_MS = 250;

const replies = new WeakMap();

/** The AssistantReply shown by `element` (an article of the transcript), if any. */
export function replyOf(element) {
  return replies.get(element.closest("article.message"));
}

/** A message the reader sent (`id`: the server's, once known), with Edit and its versions. */
export function userMessage(text, id = null) {
  const article = make("article", "message user");
  if (id) article.dataset.messageId = id;
  const tools = make("footer", "message-tools");
  tools.append(make("span", "versions"), button("edit", "Edit message", "Edit"));
  article.append(make("h2", "visually-hidden", "You said:"), make("div", "bubble", text), tools);
  return article;
}

/** The stream's camelCase metadata and the API's snake_case message, as one shape. */
function normalizeUsage(usage) {
  if (!usage) return null;
  return {
    input: usage.inputTokens ?? usage.input_tokens ?? 0,
    output: usage.outputTokens ?? usage.output_tokens ?? 0,
    cached: usage.cachedInputTokens ?? usage.cached_input_tokens ?? 0,
    reasoning: usage.reasoningTokens ?? usage.reasoning_tokens ?? 0,
    estimated: Boolean(usage.estimated),
  };
}

export class AssistantReply {
  constructor({ modelLabel = "", onSettled = () => {}, onRender = () => {} } = {}) {
    this.onSettled = onSettled;
    this.onRender = onRender;
    this.messageId = null;
    this.status = "waiting";
    this.settled = false;
    this.finalRendered = false;
    this.pacer = new TextPacer();
    this.reasoningText = "";
    this.reasoningDirty = false;
    this.renderedLength = 0;
    this.lastRender = 0;
    this.renderInterval = MIN_RENDER_INTERVAL_MS;
    this.frame = 0;
    this.build(modelLabel);
    replies.set(this.element, this);
  }

  build(modelLabel) {
    const article = make("article", "message assistant");
    this.element = article;
    this.reasoning = make("details", "reasoning");
    this.reasoning.hidden = true;
    this.reasoningLabel = make("span", "reasoning-label", "Reasoning");
    const summary = make("summary");
    summary.append(this.reasoningLabel);
    this.reasoningBody = make("div", "reasoning-body markdown");
    this.reasoning.append(summary, this.reasoningBody);
    this.content = make("div", "content markdown");
    this.markdown = new MarkdownView(this.content);
    this.typing = make("div", "typing");
    this.typing.setAttribute("aria-hidden", "true");
    this.typing.append(make("span"), make("span"), make("span"));
    this.errorBox = make("div", "reply-error");
    this.errorBox.hidden = true;
    this.errorBox.setAttribute("role", "alert");
    this.errorText = make("p", "reply-error-text");
    this.errorBox.append(this.errorText, button("retry", "Retry"));
    this.meta = make("footer", "reply-meta");
    this.statusChip = make("span", "status");
    this.details = make("span", "meta-details");
    this.model = make("span", "meta-model", modelLabel);
    const actions = make("span", "reply-actions");
    actions.append(
      make("span", "versions"),
      button("copy-reply", "Copy reply", "Copy"),
      button("continue", "Continue the reply", "Continue"),
      button("regenerate", "Regenerate reply", "Regenerate"),
    );
    this.meta.append(this.statusChip, this.model, this.details, actions);
    article.append(
      make("h2", "visually-hidden", "Assistant:"),
      this.reasoning,
      this.content,
      this.typing,
      this.errorBox,
      this.meta,
    );
    this.setStatus("waiting");
  }

  get text() {
    return this.pacer.text;
  }

  setStatus(status) {
    this.status = status;
    this.element.dataset.status = status;
    this.element.setAttribute("aria-busy", String(!this.finalRendered));
    const reconnecting = this.isReconnecting && !this.settled;
    this.element.classList.toggle("reconnecting", Boolean(reconnecting));
    this.element.classList.toggle("empty", !this.pacer.text); // nothing to copy or to continue
    this.statusChip.textContent = reconnecting ? "Reconnecting…" : (STATUS_LABELS[status] ?? status);
    this.typing.hidden = !(
      status === "waiting" ||
      (status === "streaming" && !this.pacer.text && !this.reasoningText)
    );
  }

  // -- the stream -------------------------------------------------------------------------------
  apply(chunk) {
    switch (chunk.type) {
      case "start":
        this.messageId = chunk.messageId;
        this.element.dataset.messageId = chunk.messageId;
        if (this.status === "waiting") this.setStatus("streaming");
        break;
      case "reasoning-start":
        this.reasoningStarted = performance.now();
        this.reasoning.hidden = false;
        this.reasoningLabel.textContent = "Thinking…";
        this.reasoning.classList.add("thinking");
        break;
      case "reasoning-delta":
        this.reasoningText += chunk.delta;
        this.reasoningDirty = true;
        this.setStatus(this.status === "stopping" ? "stopping" : "streaming");
        this.schedule();
        break;
      case "reasoning-end":
        this.endReasoning();
        break;
      case "text-start":
        if (this.tools?.takeBreak() && this.pacer.text) this.pacer.push("\n\n"); // text after a tool call
        break;
      case "text-delta":
        this.endReasoning();
        this.pacer.push(chunk.delta);
        if (this.status === "stopping") {
          // The last words before the server heard the stop: shown at once, so the page ends with
          // exactly the text that the server saves.
          this.pacer.flush();
        } else if (this.status !== "streaming") {
          this.setStatus("streaming");
        }
        this.schedule();
        break;
      case "error":
        this.showError(chunk.errorText, chunk.code);
        break;
      case "message-metadata":
      case "finish":
        this.applyMetadata(chunk.messageMetadata ?? {});
        if (chunk.type === "finish") this.settle(chunk.messageMetadata?.status ?? "complete");
        break;
      case "abort":
        this.settle("cancelled");
        break;
      default:
        if (isToolChunk(chunk)) (this.tools ??= new ToolCards(this)).apply(chunk); // tools.js
        break; // start-step, finish-step, text-end, and types newer than this page
    }
  }

  endReasoning() {
    if (!this.reasoning.classList.contains("thinking")) return;
    this.reasoning.classList.remove("thinking");
    const seconds = (performance.now() - this.reasoningStarted) / 1000;
    const took = seconds < 1 ? "a moment" : `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
    this.reasoningLabel.textContent = `Reasoned for ${took}`;
    this.reasoningDirty = true;
    this.schedule();
  }

  /**
   * The reply's stream starts over: a stored reply replayed whole forgets the text shown so far; a
   * continued one (`keep`: {textLength, reasoningLength}) keeps what it had before it went on.
   */
  restart(keep = null) {
    keep ??= { textLength: 0, reasoningLength: 0 };
    const text = this.pacer.text.slice(0, keep.textLength);
    this.pacer = new TextPacer();
    this.pacer.push(text);
    this.pacer.flush();
    this.reasoningText = this.reasoningText.slice(0, keep.reasoningLength);
    this.reasoning.hidden = !this.reasoningText;
    this.renderedLength = 0;
    this.markdown.reset();
    this.reasoningBody.replaceChildren();
    this.reasoningView = null;
    this.reasoningDirty = Boolean(this.reasoningText);
    this.errorBox.hidden = true;
    this.tools?.reset();
    this.settled = this.finalRendered = this.notified = false;
    this.setStatus("streaming");
    this.schedule();
  }

  /** The reader asked a reply cut short to go on: it waits for more, with what it has. */
  resume() {
    this.markdown.reopen();
    this.errorBox.hidden = true;
    this.settled = this.finalRendered = this.notified = false;
    this.setStatus("waiting");
  }

  /** The connection dropped and is being made again (or is back). */
  reconnecting(on) {
    this.isReconnecting = on;
    this.setStatus(this.status);
  }

  /** Whether it shows more than `lengths` ({textLength, reasoningLength}) of text or reasoning. */
  showsMoreThan({ textLength, reasoningLength }) {
    return this.pacer.text.length > textLength || this.reasoningText.length > reasoningLength;
  }

  /** Whether any text or reasoning has been shown. */
  get hasContent() {
    return Boolean(this.pacer.text || this.reasoningText);
  }

  /** The reader pressed Stop: show what has arrived, take no more text, wait for the server's word. */
  stopping() {
    if (this.settled) return;
    this.pacer.flush();
    this.setStatus("stopping");
    this.schedule();
  }

  /** The stream ended: `status` is complete, cancelled, error or interrupted. */
  settle(status) {
    if (this.settled) return;
    this.settled = true;
    this.endReasoning();
    this.tools?.settle(status);
    if (status !== "complete") this.pacer.flush();
    this.pacer.drain();
    this.setStatus(status);
    this.schedule();
  }

  /** A failure outside the stream (the request was refused, or the connection dropped). */
  fail(message, code) {
    this.showError(message, code);
    this.settle("error");
  }

  showError(message, code) {
    this.errorText.textContent = message || "The reply failed.";
    if (code) this.errorBox.dataset.code = code;
    this.errorBox.hidden = false;
    this.setStatus("error");
  }

  applyMetadata(meta) {
    if (meta.status && meta.status !== "streaming" && !this.settled) this.setStatus(meta.status);
    const parts = [];
    const usage = normalizeUsage(meta.usage);
    if (usage) parts.push(this.usagePart(usage));
    if (meta.cost != null) parts.push(this.part("meta-cost", usd(meta.cost), `Cost: $${meta.cost} (USD)`));
    const ttft = meta.ttftMs ?? meta.ttft_ms;
    if (ttft != null)
      parts.push(this.part("meta-ttft", `first token ${duration(ttft)}`, "Time to first token"));
    const total = meta.durationMs ?? meta.duration_ms;
    if (total != null) parts.push(this.part("meta-duration", `total ${duration(total)}`, "Total time"));
    this.details.replaceChildren(...parts);
  }

  usagePart(usage) {
    const approx = usage.estimated ? "≈" : "";
    let text = `${approx}${count(usage.input)} in · ${approx}${count(usage.output)} out`;
    if (usage.reasoning) text += ` (${count(usage.reasoning)} reasoning)`;
    const cached = usage.cached ? `, of which ${count(usage.cached)} cached` : "";
    const reasoning = usage.reasoning ? `, of which ${count(usage.reasoning)} reasoning` : "";
    const title = [
      `Input tokens: ${count(usage.input)}${cached}.`,
      `Output tokens: ${count(usage.output)}${reasoning}.`,
      usage.estimated ? "Estimated: the stream ended before the provider reported usage." : "",
    ];
    return this.part("meta-tokens", `${text} tokens`, title.join(" ").trim());
  }

  part(className, text, title) {
    const element = make("span", className, text);
    if (title) element.title = title;
    return element;
  }

  // -- rendering ----------------------------------------------------------------------------------
  schedule() {
    if (this.frame) return;
    if (document.hidden) {
      // No animation frames in a hidden tab: show what has arrived, now and then.
      this.pacer.flush();
      this.frame = setTimeout(() => this.onFrame(performance.now(), true), 200);
    } else {
      this.frame = requestAnimationFrame((now) => this.onFrame(now, false));
    }
  }

  onFrame(now, timer) {
    this.frame = 0;
    const finishing = this.settled && this.pacer.done;
    if (!timer && !finishing && now - this.lastRender < this.renderInterval) {
      this.schedule(); // not due yet: the pacer's elapsed time keeps adding up until the next render
      return;
    }
    // One render shows at most the pacer's largest step: the work of a frame stays bounded even
    // when a whole reply arrives at once.
    const visible = this.pacer.step(Math.min(250, now - (this.lastStep ?? now - 16)), now);
    this.lastStep = now;
    const started = performance.now();
    if (this.settled && this.pacer.done && !this.finalRendered) {
      this.finalRendered = true;
      this.markdown.update(visible, true);
    } else if (visible.length !== this.renderedLength) {
      this.markdown.update(visible);
    }
    this.renderedLength = visible.length;
    if (this.reasoningDirty) this.renderReasoning(this.settled);
    this.setStatus(this.status);
    const cost = performance.now() - started;
    this.renderInterval = Math.min(MAX_RENDER_INTERVAL_MS, Math.max(MIN_RENDER_INTERVAL_MS, cost * 4));
    this.lastRender = performance.now();
    this.onRender(this);
    if (!this.finalRendered || this.reasoningDirty) {
      this.schedule();
    } else if (!this.notified) {
      this.notified = true;
      this.onSettled(this);
    }
  }

  renderReasoning(final) {
    this.reasoningView ??= new MarkdownView(this.reasoningBody);
    this.reasoningView.update(this.reasoningText, final);
    this.reasoningDirty = false;
  }

  // -- a stored reply -------------------------------------------------------------------------------
  /** Show a message from the API (snake_case), all at once. */
  static fromStored(message, modelLabel) {
    const reply = new AssistantReply({ modelLabel });
    reply.messageId = message.id;
    reply.element.dataset.messageId = message.id;
    reply.pacer.push(message.content);
    reply.pacer.flush();
    renderMarkdown(reply.content, message.content);
    if (message.reasoning) {
      reply.reasoning.hidden = false;
      reply.reasoningText = message.reasoning;
      renderMarkdown(reply.reasoningBody, message.reasoning);
    }
    reply.tools = ToolCards.fromParts(reply, message.parts ?? []); // tools.js
    if (message.error) reply.showError(message.error.message, message.error.code);
    reply.settled = reply.finalRendered = message.status !== "streaming";
    reply.applyMetadata(message);
    reply.setStatus(message.status);
    return reply;
  }
}
