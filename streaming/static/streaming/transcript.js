// What the buttons of the transcript do: copy, regenerate and retry, continue a reply cut short, edit
// a sent message, switch between the versions of a message, and answer a tool call's approval
// request. Each that makes a reply hands it to the app (chat.js) with its `origin`: what to put back
// if the server refuses it.

import { describe } from "./budget.js";
import { editMessage } from "./editing.js";
import { replyOf, userMessage } from "./reply.js";
import { conversationHref } from "./sidebar.js";

const WAIT = "Wait for the reply to finish, or stop it, first.";

export class TranscriptActions {
  constructor(app) {
    this.app = app;
  }

  onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const reply = replyOf(button);
    const action = button.dataset.action;
    if (action === "copy-code")
      this.copy(button, button.closest(".code-block").querySelector("pre").textContent);
    else if (action === "copy-reply" && reply?.text) this.copy(button, reply.text);
    else if (action === "regenerate" && reply) this.regenerate(reply);
    else if (action === "retry" && reply) this.retry(reply);
    else if (action === "continue" && reply) this.continueReply(reply);
    else if (action === "edit") this.edit(button.closest("article.message"));
    else if (action === "version") this.switchVersion(button);
    else if ((action === "tool-approve" || action === "tool-deny") && reply) this.answer(reply, button);
  }

  /** Whether the shown conversation can take a new reply now; if not, the reader is told why. */
  ready() {
    if (!this.app.view.busy) return true;
    this.app.composer.note(WAIT);
    return false;
  }

  regenerate(reply) {
    const { app } = this;
    if (!this.ready() || !app.view.id || !reply.messageId) return;
    const hadFocus = reply.element.contains(document.activeElement);
    reply.element.remove(); // it stays on the server, as an earlier version of the new reply
    const body = { conversation: app.view.id, regenerate: reply.messageId, ...app.chatOptions() };
    app.runReply(app.view, body, { kind: "regenerate", previousReply: reply.messageId });
    if (hadFocus) app.composer.stop.focus(); // the button pressed is gone; Stop is what can be done next
  }

  retry(reply) {
    const { origin } = reply;
    if (reply.messageId || origin?.kind !== "send") return this.regenerate(reply);
    // The request never reached the server (no reply was named): send the message again.
    if (!this.ready()) return;
    reply.element.remove();
    origin.user.remove();
    this.app.send(this.app.view, origin.text);
  }

  /** A reply cut short goes on, in the same message, with the model that wrote it. */
  continueReply(reply) {
    const { app } = this;
    if (!this.ready() || !reply.messageId) return;
    reply.resume();
    reply.origin = { kind: "continue" };
    app.watch(app.view, reply);
    app.view.reply = reply;
    const { reasoning } = app.chatOptions();
    app.stream(app.view, reply, { continue: reply.messageId, reasoning });
    app.composer.stop.focus();
  }

  /** The user's answer to a tool call's approval request: the reply goes on once all are answered. */
  answer(reply, button) {
    const { app } = this;
    const { view } = app;
    if (!this.ready()) return;
    const replies = view.element.querySelectorAll("article.message.assistant");
    if (reply.element !== replies[replies.length - 1]) {
      // A message sent since closed the question: the server denied the call, unanswered.
      app.announce("The conversation went on since: that call can no longer be approved.", true);
      return;
    }
    const answer = { id: button.dataset.approvalId, approved: button.dataset.action === "tool-approve" };
    reply.tools.answering(answer);
    reply.origin = { kind: "approve" };
    app.watch(view, reply);
    view.reply = reply;
    app.stream(view, reply, { approvals: [answer], ...app.chatOptions() });
  }

  edit(article, text = null) {
    if (!this.ready() || !article?.dataset.messageId) return;
    editMessage(article, {
      text,
      send: (edited) => this.sendEdit(article, edited),
      enterIsNewLine: () => this.app.composer.enterIsNewLine,
    });
  }

  /** The edited text as a new version of the message: what followed the old one goes out of view. */
  sendEdit(article, text) {
    const { app } = this;
    const { view } = app;
    if (!this.ready()) return;
    const previous = article.dataset.messageId;
    view.removeFrom(article);
    const user = userMessage(text);
    view.element.append(user);
    const body = { conversation: view.id, message: text, edit: previous, ...app.chatOptions() };
    app.runReply(view, body, { kind: "edit", text, user, previousUser: previous });
  }

  /** Show the branch of another version of a message. */
  async switchVersion(button) {
    const { app } = this;
    const { view } = app;
    const target = button.dataset.target;
    if (!target || !this.ready()) return;
    const direction = button.getAttribute("aria-label");
    try {
      view.show(await app.api.conversation(view.id, target), (model) => app.labelOf(model));
    } catch (error) {
      app.announce(`That version could not be shown: ${error.message}`, true);
      return;
    }
    view.branch = target;
    history.replaceState(null, "", conversationHref(view.id, target));
    app.updateComposer();
    const article = view.element.querySelector(`article[data-message-id="${CSS.escape(target)}"]`);
    const number = article?.querySelector(".version-number")?.getAttribute("aria-label");
    const same = article?.querySelector(`[aria-label="${direction}"]:not(:disabled)`);
    (same ?? article?.querySelector(".version-step:not(:disabled)"))?.focus();
    if (number) app.announce(`${number}.`);
  }

  /**
   * The server refused the request before it started (nothing was stored): the transcript is put
   * back as it was, the message goes back in the box (or in its editor), and the box says why and
   * what can be done: log in again, or what is left of the budget. No Retry: it would be refused too.
   */
  async refused(view, reply, error) {
    const { app } = this;
    const { origin } = reply;
    reply.element.remove();
    origin.user?.remove();
    if (origin.kind === "send") app.composer.restore(origin.text);
    else if (view.id) await this.reload(view, origin);
    const detail = error.status === 402 ? await this.budgetLeft() : "";
    app.composer.error(explain(error), { detail, link: this.loginLink(error) });
  }

  async budgetLeft() {
    const status = await this.app.budget.refresh();
    return status ? `This month: ${describe(status)}.` : "";
  }

  loginLink(error) {
    if (error.status !== 401) return null;
    const next = window.location.pathname + window.location.search;
    const href = `${this.app.root.dataset.loginUrl}?${new URLSearchParams({ next })}`;
    return { href, text: "Log in again" };
  }

  /**
   * The branch as the server has it (after a refused edit, regenerate or continue); a refused edit
   * opens its editor again with the text, to fix and send.
   */
  async reload(view, origin) {
    const data = await this.app.api.conversation(view.id, view.branch).catch(() => null);
    if (!data) return;
    view.show(data, (model) => this.app.labelOf(model));
    this.app.updateComposer();
    if (origin.kind !== "edit") return;
    const selector = `article[data-message-id="${CSS.escape(origin.previousUser)}"]`;
    const article = view.element.querySelector(selector);
    if (article) this.edit(article, origin.text);
  }

  async copy(button, text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      this.app.announce("Copying failed: the browser did not allow it.", true);
      return;
    }
    const label = button.textContent;
    button.textContent = "Copied";
    this.app.announce("Copied to the clipboard.");
    setTimeout(() => (button.textContent = label), 1500);
  }
}

/** What a refusal says to the reader: the server's sentence, and for some a word more. */
function explain(error) {
  if (error.status === 401) return "Your session has ended: log in again, then send your message.";
  if (error.status === 429 && error.retryAfter) return `${error.message} Try again in ${error.retryAfter} s.`;
  return error.message;
}
