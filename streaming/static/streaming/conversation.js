// One conversation's transcript: the messages of the branch shown, the versions of each ("< 2 / 3 >"),
// where the model's view of a long conversation begins, and the reply streaming into it, if any.

import { make } from "./dom.js";
import { AssistantReply, replyOf, userMessage } from "./reply.js";

export class ConversationView {
  constructor(id = null) {
    this.id = id;
    this.title = "";
    this.model = null;
    this.branch = null; // the message whose branch is shown, when it is not the newest one
    this.controller = null; // the AbortController of the reply this page is streaming
    this.reply = null;
    this.remoteStreaming = null; // the id of a reply streaming elsewhere (another tab or device)
    this.versions = new Map(); // message id -> the ids of its versions, oldest first
    this.element = make("div", "messages");
    this.element.setAttribute("role", "log");
    this.element.setAttribute("aria-live", "polite");
    this.element.setAttribute("aria-label", "Messages");
  }

  /** A reply streams into this conversation, from this page or from elsewhere. */
  get busy() {
    return this.controller !== null || this.remoteStreaming !== null;
  }

  get empty() {
    return !this.element.querySelector("article.message");
  }

  /** Show a conversation's branch as the API returns it; `labelOf` names a model id. */
  show(data, labelOf) {
    this.title = data.title;
    this.model = data.model;
    this.versions.clear();
    const articles = data.messages.map((message) => {
      this.versions.set(message.id, message.versions ?? [message.id]);
      return message.role === "user"
        ? userMessage(message.content, message.id)
        : AssistantReply.fromStored(message, labelOf(message.model)).element;
    });
    this.element.replaceChildren(...articles);
    for (const article of articles) this.showVersions(article);
    const streaming = data.messages.findLast((m) => m.role === "assistant" && m.status === "streaming");
    this.remoteStreaming = this.controller ? null : (streaming?.id ?? null);
  }

  /** The id of the last message shown: what a new message follows. */
  lastMessageId() {
    const articles = this.element.querySelectorAll("article.message");
    return articles[articles.length - 1]?.dataset.messageId ?? null;
  }

  /**
   * `id` is a new version of `previous` (an edit or a regenerated reply), or a message of its own (one
   * already known, such as a reply followed again, keeps its versions).
   */
  addVersion(article, id, previous = null) {
    article.dataset.messageId = id;
    const known = this.versions.get(id);
    const group = known ?? (previous ? [...(this.versions.get(previous) ?? [previous])] : []);
    if (!group.includes(id)) group.push(id);
    for (const member of group) this.versions.set(member, group);
    this.showVersions(article);
  }

  /** The "< 2 / 3 >" of a message with versions; nothing for one without. */
  showVersions(article) {
    const slot = article.querySelector(".versions");
    const id = article.dataset.messageId;
    const group = this.versions.get(id) ?? [];
    if (!slot) return;
    if (group.length < 2) {
      slot.replaceChildren();
      return;
    }
    const at = group.indexOf(id);
    const step = (offset, label, text) => {
      const target = group[at + offset];
      const button = make("button", "version-step", text);
      button.type = "button";
      button.dataset.action = "version";
      button.setAttribute("aria-label", label);
      if (target) button.dataset.target = target;
      else button.disabled = true;
      return button;
    };
    const where = make("span", "version-number", `${at + 1} / ${group.length}`);
    where.setAttribute("aria-label", `Version ${at + 1} of ${group.length}`);
    slot.replaceChildren(step(-1, "Previous version", "‹"), where, step(1, "Next version", "›"));
  }

  /**
   * Mark where the model's view begins: a reply's context is the newest `limit` messages with text
   * before the message it answers, so a line goes above the oldest of those (when there are older).
   */
  markContext(limit) {
    this.element.querySelector(".context-divider")?.remove();
    const articles = [...this.element.querySelectorAll("article.message")];
    let seen = 0;
    for (let i = articles.length - 1; i >= 0; i--) {
      if (!hasText(articles[i])) continue;
      seen += 1;
      if (seen === limit && articles.slice(0, i).some(hasText)) {
        const line = make("p", "context-divider", `The model sees the ${limit} messages below this line`);
        line.setAttribute("role", "note");
        articles[i].before(line);
        return;
      }
    }
  }

  /** The articles from `article` on (an edit replaces them with the new version and its reply). */
  removeFrom(article) {
    const doomed = [];
    for (let node = article; node; node = node.nextElementSibling) doomed.push(node);
    for (const node of doomed) node.remove();
  }
}

function hasText(article) {
  if (article.classList.contains("user")) return Boolean(article.querySelector(".bubble")?.textContent);
  return Boolean(replyOf(article)?.text);
}
