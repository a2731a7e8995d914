// The chat page: conversations, the composer, and the replies streaming into them.

import { Api, ApiError } from "./api.js";
import { ConversationView } from "./conversation.js";
import { Announcer, Drawer, ScrollFollower } from "./layout.js";
import { warmUp } from "./markdown.js";
import { AssistantReply, replyOf, userMessage } from "./reply.js";
import { ConversationList, conversationHref } from "./sidebar.js";
import { readChunks } from "./sse.js";
import { resumeReply } from "./tools.js";

const STOP_GRACE_MS = 2000; // after Stop, how long the server may take to send its own ending
// After a dropped connection, the reply is followed again after these many milliseconds (the last
// one repeats) until it has been away this long: the reply goes on at the server meanwhile.
const RECONNECT_DELAYS_MS = [250, 500, 1000, 2000];
const RECONNECT_FOR_MS = 60000;
const SETTLED_ANNOUNCEMENTS = {
  complete: "Reply complete.",
  cancelled: "Reply stopped.",
  interrupted: "The reply was interrupted.",
  awaiting_approval: "The reply waits for your approval of a tool call.",
};

const $ = (id) => document.getElementById(id);

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(new DOMException("Aborted", "AbortError"));
      },
      { once: true },
    );
  });
}

class ChatApp {
  constructor(root) {
    this.root = root;
    this.api = new Api(root);
    this.models = new Map();
    this.views = new Map(); // views kept while they stream, by conversation id
    this.view = null;
    this.openToken = 0;
    this.transcript = $("transcript");
    this.scroll = new ScrollFollower(this.transcript, $("jump-latest"));
    this.drawer = new Drawer(root, {
      panel: $("sidebar"),
      toggle: $("sidebar-toggle"),
      scrim: $("scrim"),
      main: $("main"),
    });
    this.announcer = new Announcer($("announcer"), $("alert"));
    this.prompt = $("prompt");
    this.modelSelect = $("model");
    this.reasoningBox = $("reasoning");
    this.list = new ConversationList($("conversation-list"), $("conversation-empty"), {
      open: (id) => this.open(id),
      rename: (id, title) => this.rename(id, title),
      remove: (id, title) => this.remove(id, title),
    });
  }

  async start() {
    this.bind();
    this.showView(new ConversationView());
    try {
      await Promise.all([this.loadModels(), this.refreshList()]);
    } catch (error) {
      this.announce(`The page could not load: ${error.message}`, true);
    }
    await this.route();
    this.root.dataset.ready = "true";
    (window.requestIdleCallback ?? setTimeout)(() => warmUp());
  }

  bind() {
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.prompt.addEventListener("keydown", (event) => this.onPromptKey(event));
    this.prompt.addEventListener("input", () => this.resizePrompt());
    $("stop").addEventListener("click", () => this.stop());
    $("new-chat").addEventListener("click", () => this.newChat());
    this.modelSelect.addEventListener("change", () => this.onModelChange());
    this.reasoningBox.addEventListener("change", () => {
      localStorage.setItem("streaming.reasoning", this.reasoningBox.checked);
    });
    this.transcript.addEventListener("click", (event) => this.onTranscriptClick(event));
    for (const suggestion of document.querySelectorAll("[data-suggestion]")) {
      suggestion.addEventListener("click", () => {
        this.prompt.value = suggestion.dataset.suggestion;
        this.resizePrompt();
        this.prompt.focus();
      });
    }
    window.addEventListener("popstate", () => this.route());
  }

  // -- models -----------------------------------------------------------------------------------
  async loadModels() {
    const data = await this.api.models();
    const saved = localStorage.getItem("streaming.model");
    for (const model of data.models) {
      this.models.set(model.id, model);
      this.modelSelect.add(new Option(model.label, model.id));
    }
    this.modelSelect.value = this.models.has(saved) ? saved : (data.default ?? data.models[0]?.id ?? "");
    this.reasoningBox.checked = localStorage.getItem("streaming.reasoning") === "true";
    this.onModelChange(false);
  }

  onModelChange(save = true) {
    const model = this.models.get(this.modelSelect.value);
    $("reasoning-toggle").hidden = !model?.reasoning;
    if (save) localStorage.setItem("streaming.model", this.modelSelect.value);
  }

  labelOf(modelId) {
    return this.models.get(modelId)?.label ?? modelId ?? "";
  }

  chatOptions() {
    const model = this.modelSelect.value;
    return { model, reasoning: Boolean(this.models.get(model)?.reasoning && this.reasoningBox.checked) };
  }

  // -- conversations ----------------------------------------------------------------------------
  async route() {
    const id = new URLSearchParams(window.location.search).get("c");
    if (id) await this.open(id, { push: false });
    else this.newChat({ push: false });
  }

  async refreshList() {
    this.list.update(await this.api.conversations());
    if (this.view?.id) this.setTitle(this.list.title(this.view.id) || this.view.title);
  }

  refreshListSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshList().catch(() => {}), 150);
  }

  async open(id, { push = true } = {}) {
    this.drawer.set(false);
    if (this.view?.id === id) return;
    const token = ++this.openToken;
    let view = this.views.get(id);
    if (!view) {
      view = new ConversationView(id);
      try {
        view.show(await this.api.conversation(id), (model) => this.labelOf(model));
      } catch (error) {
        if (token !== this.openToken) return;
        this.announce(error.status === 404 ? "That conversation no longer exists." : error.message, true);
        this.newChat();
        return;
      }
      if (token !== this.openToken) return;
    }
    if (push) history.pushState(null, "", conversationHref(id));
    if (this.models.has(view.model)) {
      this.modelSelect.value = view.model;
      this.onModelChange();
    }
    this.showView(view);
    this.scroll.follow(true);
    if (view.remoteStreaming) this.attach(view);
  }

  newChat({ push = true } = {}) {
    this.drawer.set(false);
    this.openToken++;
    if (push && window.location.search) history.pushState(null, "", conversationHref(null));
    this.showView(new ConversationView());
    this.prompt.focus();
  }

  showView(view) {
    const previous = this.view;
    if (previous && previous !== view && !previous.controller) this.views.delete(previous.id);
    this.view = view;
    if (view.id) this.views.set(view.id, view);
    this.transcript.querySelector(".messages")?.remove();
    this.transcript.append(view.element);
    this.list.setActive(view.id);
    this.setTitle(view.id ? this.list.title(view.id) || view.title : "");
    this.updateComposer();
  }

  setTitle(title) {
    $("conversation-title").textContent = title || "New chat";
    document.title = `${title || "New chat"} · Chat`;
  }

  async rename(id, title) {
    try {
      await this.api.rename(id, title);
      this.announce("Conversation renamed.");
      await this.refreshList();
    } catch (error) {
      this.announce(`Renaming failed: ${error.message}`, true);
      throw error;
    }
  }

  async remove(id, title) {
    const dialog = $("delete-dialog");
    $("delete-dialog-title").textContent = title || "this conversation";
    dialog.returnValue = "";
    dialog.showModal();
    await new Promise((resolve) => dialog.addEventListener("close", resolve, { once: true }));
    if (dialog.returnValue !== "delete") return;
    try {
      this.views.get(id)?.controller?.abort();
      await this.api.remove(id);
      this.views.delete(id);
      if (this.view?.id === id) this.newChat();
      this.announce("Conversation deleted.");
      await this.refreshList();
      if (!document.activeElement || document.activeElement === document.body) this.prompt.focus();
    } catch (error) {
      this.announce(`Deleting failed: ${error.message}`, true);
    }
  }

  /** A reply that streams elsewhere (a reload, another tab or device): follow it here, live. */
  attach(view) {
    const messageId = view.remoteStreaming;
    view.remoteStreaming = null;
    const article = view.element.querySelector(`article[data-message-id="${CSS.escape(messageId)}"]`);
    const reply = article && replyOf(article);
    if (!reply) return;
    reply.onRender = () => view === this.view && this.scroll.follow();
    reply.onSettled = (settled) => this.onSettled(view, settled);
    view.reply = reply;
    this.stream(view, reply, null);
  }

  // -- sending and streaming --------------------------------------------------------------------
  submit() {
    const text = this.prompt.value;
    if (!text.trim()) return;
    if (this.view.busy) {
      this.announce("Wait for the reply to finish, or stop it.", true);
      return;
    }
    this.prompt.value = "";
    this.resizePrompt();
    this.send(this.view, text);
  }

  send(view, text) {
    const user = userMessage(text);
    view.element.append(user);
    this.runReply(view, { conversation: view.id, message: text, ...this.chatOptions() }, { text, user });
  }

  runReply(view, body, origin) {
    const reply = new AssistantReply({
      modelLabel: this.labelOf(body.model),
      onRender: () => view === this.view && this.scroll.follow(),
      onSettled: (settled) => this.onSettled(view, settled),
    });
    reply.origin = origin;
    view.element.append(reply.element);
    view.reply = reply;
    this.stream(view, reply, body);
  }

  /**
   * Stream a reply into `view`: one that starts now (`body`: the request), or one already streaming
   * (null: followed from its first chunk). A connection that drops is followed again from the last
   * event it delivered, with growing pauses: nothing is lost or shown twice.
   */
  async stream(view, reply, body) {
    view.controller = new AbortController();
    const { signal } = view.controller;
    this.updateComposer();
    this.scroll.follow(true);
    const position = { lastId: null };
    try {
      if (body) {
        const approving = Boolean(body.approvals);
        const response = approving
          ? await this.api.approve(reply.messageId, body, signal)
          : await this.api.chat(body, signal);
        if (!response.ok) {
          const error = await ApiError.from(response);
          reply.requestFailed = !approving;
          reply.fail(error.message, error.code);
          return;
        }
        if (response.status === 202) return; // other calls still wait for an answer (tools.js)
        if (approving) resumeReply(reply);
        await this.consume(view, reply, response, position);
      }
      if (!reply.settled && reply.messageId) await this.follow(view, reply, position, signal);
      if (!reply.settled) reply.fail("The connection closed before the reply was complete.", "connection");
    } catch (error) {
      if (error.name === "AbortError") reply.settle("cancelled");
      else reply.fail("The connection to the server was lost. The reply may be incomplete.", "connection");
    } finally {
      clearTimeout(view.stopTimer);
      view.controller = null;
      if (view.id) this.list.setStreaming(view.id, false);
      if (view !== this.view) this.views.delete(view.id);
      this.updateComposer();
      this.refreshListSoon();
    }
  }

  /** Read a response's chunks into the reply; a dropped connection ends it quietly (to follow again). */
  async consume(view, reply, response, position) {
    try {
      for await (const chunk of readChunks(response, position)) {
        if (chunk.type === "start") {
          if (reply.hasContent && !reply.resuming) reply.restart(); // a stored reply, replayed whole
          reply.resuming = false; // (a reply going on after its approvals keeps what it showed)
          this.adopt(view, chunk);
        }
        reply.apply(chunk);
      }
    } catch (error) {
      if (error.name === "AbortError") throw error;
    }
  }

  /** Follow a reply whose connection dropped (or one that streams elsewhere), until it ends. */
  async follow(view, reply, position, signal) {
    const since = Date.now();
    let attempt = 0;
    while (!reply.settled && Date.now() - since < RECONNECT_FOR_MS) {
      if (position.lastId !== null || attempt > 0) {
        reply.reconnecting(true);
        await sleep(RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)], signal);
      }
      attempt += 1;
      let response;
      try {
        response = await this.api.follow(reply.messageId, position.lastId, signal);
      } catch (error) {
        if (error.name === "AbortError") throw error;
        continue; // still offline
      }
      if (!response.ok) {
        const error = await ApiError.from(response);
        if (response.status < 500) return reply.fail(error.message, error.code);
        continue;
      }
      const before = position.lastId;
      reply.reconnecting(false);
      await this.consume(view, reply, response, position);
      if (position.lastId !== before) attempt = 0; // it moved on: the next drop starts over
    }
  }

  /** The `start` chunk: the server's ids for the conversation (new for a new chat) and the reply. */
  adopt(view, chunk) {
    const id = chunk.messageMetadata?.conversationId;
    if (id && !view.id) {
      view.id = id;
      this.views.set(id, view);
      if (view === this.view) {
        history.replaceState(null, "", conversationHref(id));
        this.list.setActive(id);
      }
    }
    if (view.id) this.list.setStreaming(view.id, true);
    this.refreshListSoon();
  }

  onSettled(view, reply) {
    if (view !== this.view) return;
    if (reply.status === "error") this.announce(`The reply failed: ${reply.errorText.textContent}`, true);
    else this.announce(SETTLED_ANNOUNCEMENTS[reply.status] ?? "");
  }

  async stop() {
    const view = this.view;
    if (!view.controller) return;
    const { reply, controller } = view;
    if (reply.status === "stopping") return;
    reply.stopping();
    const abort = () => controller.abort();
    if (!reply.messageId) return abort(); // nothing to name yet: the server sees the client go
    // The server ends the stream itself with the usage and cost so far; the abort is the fallback.
    view.stopTimer = setTimeout(abort, STOP_GRACE_MS);
    try {
      if (!(await this.api.stop(reply.messageId))) abort();
    } catch {
      abort();
    }
  }

  regenerate(reply) {
    const view = this.view;
    if (view.busy || !view.id) return;
    const hadFocus = reply.element.contains(document.activeElement);
    reply.element.remove();
    this.runReply(
      view,
      { conversation: view.id, regenerate: true, ...this.chatOptions() },
      { regenerate: true },
    );
    if (hadFocus) $("stop").focus(); // the button pressed is gone; Stop is what can be done next
  }

  retry(reply) {
    const { origin } = reply;
    if (reply.requestFailed && origin?.text !== undefined) {
      // The server refused the request before storing anything: send the message again.
      if (this.view.busy) return;
      const hadFocus = reply.element.contains(document.activeElement);
      reply.element.remove();
      origin.user.remove();
      this.send(this.view, origin.text);
      if (hadFocus) $("stop").focus();
    } else {
      this.regenerate(reply);
    }
  }

  onTranscriptClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const reply = replyOf(button);
    const action = button.dataset.action;
    if (action === "copy-code")
      this.copy(button, button.closest(".code-block").querySelector("pre").textContent);
    else if (action === "copy-reply" && reply) this.copy(button, reply.text);
    else if (action === "regenerate" && reply) this.regenerate(reply);
    else if (action === "retry" && reply) this.retry(reply);
    else if ((action === "tool-approve" || action === "tool-deny") && reply) this.answer(reply, button);
  }

  /** The user's answer to a tool call's approval request: the reply goes on once all are answered. */
  answer(reply, button) {
    const view = this.view;
    if (view.busy) return;
    const replies = view.element.querySelectorAll("article.message.assistant");
    if (reply.element !== replies[replies.length - 1]) {
      // A message sent since closed the question: the server denied the call, unanswered.
      this.announce("The conversation went on since: that call can no longer be approved.", true);
      return;
    }
    const answer = { id: button.dataset.approvalId, approved: button.dataset.action === "tool-approve" };
    reply.tools.answering(answer);
    view.reply = reply;
    this.stream(view, reply, { approvals: [answer], ...this.chatOptions() });
  }

  async copy(button, text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      this.announce("Copying failed: the browser did not allow it.", true);
      return;
    }
    const label = button.textContent;
    button.textContent = "Copied";
    this.announce("Copied to the clipboard.");
    setTimeout(() => (button.textContent = label), 1500);
  }

  // -- the page -----------------------------------------------------------------------------------
  updateComposer() {
    const view = this.view;
    const streaming = Boolean(view?.busy);
    const stopFocused = document.activeElement === $("stop");
    const sendFocused = document.activeElement === $("send");
    $("send").hidden = streaming;
    $("stop").hidden = !streaming;
    if (streaming && sendFocused) $("stop").focus();
    if (!streaming && stopFocused) $("send").focus();
    view?.element.classList.toggle("busy", streaming);
    $("empty-state").hidden = !view?.empty;
  }

  onPromptKey(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "Escape" && this.view.busy) {
      event.preventDefault();
      this.stop();
    }
  }

  resizePrompt() {
    this.prompt.style.height = "auto";
    this.prompt.style.height = `${Math.min(this.prompt.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  announce(text, urgent = false) {
    this.announcer.say(text, urgent);
  }
}

new ChatApp($("chat-app")).start();
