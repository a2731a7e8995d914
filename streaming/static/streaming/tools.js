// The tool calls of a reply, as collapsible cards: the tool's name, what it was asked (its input), what
// it answered (its output, or its error), and how long it took. A call that needs the user's approval
// shows Approve and Deny; the page sends the answer (chat.js) and the reply goes on in the same card.
// Everything the model or a tool wrote is set as text, never as HTML.

import { make } from "./dom.js";
import { duration } from "./format.js";

const STATES = {
  "input-streaming": "Preparing the call…",
  "input-available": "Running…",
  "approval-requested": "Needs your approval",
  "approval-responded": "Answered",
  "output-available": "Done",
  "output-error": "Failed",
  "output-denied": "Denied",
};
// What a call that never finished shows once its reply has ended.
const UNFINISHED = { cancelled: "Stopped before it finished", error: "Did not finish", interrupted: "Did not finish" };

function shown(value) {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** Whether a chunk of the stream is about a tool call. */
export function isToolChunk(chunk) {
  return chunk.type.startsWith("tool-");
}

/** A reply that awaited approval streams again (its answer was sent): it takes chunks once more. */
export function resumeReply(reply) {
  reply.resuming = true;
  reply.resume();
  reply.setStatus("streaming");
}

export class ToolCards {
  constructor(reply) {
    this.reply = reply;
    this.cards = new Map(); // toolCallId -> card
    this.sinceText = false; // a call came after the last text: the next text is a paragraph of its own
    this.element = make("div", "tool-calls");
    reply.content.before(this.element);
  }

  /** The cards of a stored message's tool parts (the API's `parts`). */
  static fromParts(reply, parts) {
    const tools = parts.filter((part) => part.type?.startsWith("tool-"));
    if (!tools.length) return null;
    const cards = new ToolCards(reply);
    for (const part of tools) {
      const card = cards.card(part.toolCallId, part.type.slice(5));
      card.input = part.input;
      card.output = part.output;
      card.errorText = part.errorText;
      card.approval = part.approval;
      card.ms = part.toolMetadata?.durationMs;
      cards.show(card, part.state);
    }
    const last = parts.filter((part) => part.type !== "step-start").at(-1);
    cards.sinceText = Boolean(last?.type?.startsWith("tool-")); // what follows is a paragraph of its own
    return cards;
  }

  apply(chunk) {
    const { toolCallId: id } = chunk;
    if (chunk.type === "tool-input-start") {
      this.sinceText = true;
      this.show(this.card(id, chunk.toolName), "input-streaming");
      return;
    }
    const card = this.cards.get(id);
    if (!card) return;
    switch (chunk.type) {
      case "tool-input-delta":
        card.rawInput = (card.rawInput ?? "") + chunk.inputTextDelta;
        card.inputView.textContent = card.rawInput;
        return;
      case "tool-input-available":
        card.input = chunk.input;
        card.started = performance.now();
        return this.show(card, "input-available");
      case "tool-input-error":
        card.input = chunk.input;
        card.errorText = chunk.errorText;
        return this.show(card, "output-error");
      case "tool-approval-request":
        card.approval = { id: chunk.approvalId };
        return this.show(card, "approval-requested");
      case "tool-output-available":
      case "tool-output-error":
        card.output = chunk.output;
        card.errorText = chunk.errorText;
        card.ms = chunk.toolMetadata?.durationMs ?? (card.started ? performance.now() - card.started : null);
        return this.show(card, chunk.type === "tool-output-available" ? "output-available" : "output-error");
      case "tool-output-denied":
        return this.show(card, "output-denied");
      default:
    }
  }

  card(id, name) {
    let card = this.cards.get(id);
    if (card) return card;
    const element = make("details", "tool-card");
    element.dataset.toolCallId = id;
    const summary = make("summary", "tool-summary");
    const nameView = make("span", "tool-name", name);
    const stateView = make("span", "tool-state");
    const timeView = make("span", "tool-time");
    summary.append(make("span", "tool-icon"), nameView, stateView, timeView);
    const body = make("div", "tool-body");
    const inputView = make("pre", "tool-input");
    const outputLabel = make("p", "tool-label", "Output");
    const outputView = make("pre", "tool-output");
    const actions = make("div", "tool-approval");
    body.append(make("p", "tool-label", "Input"), inputView, outputLabel, outputView, actions);
    element.append(summary, body);
    this.element.append(element);
    card = { id, name, element, stateView, timeView, inputView, outputLabel, outputView, actions };
    this.cards.set(id, card);
    return card;
  }

  show(card, state) {
    card.state = state;
    const { element } = card;
    element.dataset.state = state;
    card.stateView.textContent = STATES[state] ?? state;
    card.timeView.textContent = duration(card.ms);
    if (card.input !== undefined) card.inputView.textContent = shown(card.input);
    const failed = state === "output-error";
    const answered = state === "output-available" || failed;
    card.outputLabel.textContent = failed ? "Error" : "Output";
    card.outputLabel.hidden = card.outputView.hidden = !answered;
    card.outputView.textContent = failed ? (card.errorText ?? "") : shown(card.output);
    card.outputView.classList.toggle("tool-error", failed);
    this.showApproval(card, state);
  }

  showApproval(card, state) {
    const { actions, approval } = card;
    actions.replaceChildren();
    if (state === "approval-requested") {
      card.element.open = true; // the question is in view, not folded away
      const approve = make("button", "button tool-approve", "Approve");
      const deny = make("button", "button secondary tool-deny", "Deny");
      for (const [button, action] of [[approve, "tool-approve"], [deny, "tool-deny"]]) {
        button.type = "button";
        button.dataset.action = action;
        button.dataset.approvalId = approval.id;
        button.setAttribute("aria-label", `${button.textContent} ${card.name}`);
      }
      actions.append(make("p", "tool-question", `Run ${card.name} with this input?`), approve, deny);
    } else if (approval?.approved !== undefined) {
      const said = approval.approved ? "You approved this call." : "You denied this call.";
      actions.append(make("p", "tool-question", approval.reason ? `${said} ${approval.reason}` : said));
    }
  }

  /** The user answered: the card says so while the answer goes to the server. */
  answering({ id, approved }) {
    for (const card of this.cards.values()) {
      if (card.approval?.id !== id) continue;
      card.approval = { ...card.approval, approved };
      this.show(card, "approval-responded");
    }
  }

  /** A text part begins: true when a tool call came since the last one (it starts a new paragraph). */
  takeBreak() {
    const result = this.sinceText;
    this.sinceText = false;
    return result;
  }

  /** The reply ended: a call that never answered says so. */
  settle(status) {
    for (const card of this.cards.values()) {
      if (card.state === "input-streaming" || card.state === "input-available") {
        card.stateView.textContent = UNFINISHED[status] ?? STATES[card.state];
        card.element.dataset.state = "unfinished";
      }
    }
  }

  /** The reply starts over (a stored reply, replayed whole). */
  reset() {
    this.cards.clear();
    this.element.replaceChildren();
    this.sinceText = false;
  }
}
