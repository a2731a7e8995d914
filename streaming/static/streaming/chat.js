// The chat page: conversations, the composer, and the replies streaming into them.

import { Api, ApiError } from "./api.js";
import { BudgetView } from "./budget.js";
import { Composer } from "./composer.js";
import { ConversationView } from "./conversation.js";
import { Announcer, Drawer, ScrollFollower } from "./layout.js";
import { warmUp } from "./markdown.js";
import { ModelPicker } from "./models.js";
import { AssistantReply, replyOf, userMessage } from "./reply.js";
import { ConversationList, conversationHref } from "./sidebar.js";
import { readChunks } from "./sse.js";
import { resumeReply } from "./tools.js";
import { TranscriptActions } from "./transcript.js";

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
    this.budget = new BudgetView($("budget"), this.api);
    this.composer = Composer.fromPage({
      submit: () => this.submit(),
      stop: () => this.view.busy && (this.stop(), true),
    });
    this.picker = new ModelPicker($("model"), $("reasoning"), $("reasoning-toggle"));
    this.list = ConversationList.fromPage({
      page: (options) => this.api.conversations(options),
      open: (id) => this.open(id),
      rename: (id, title) => this.rename(id, title),
      remove: (id, title) => this.remove(id, title),
      announce: (text) => this.announce(text),
    });
    this.actions = new TranscriptActions(this);
  }

  async start() {
    this.bind();
    this.showView(new ConversationView());
    try {
      await Promise.all([this.picker.load(this.api), this.list.refresh(), this.budget.refresh()]);
    } catch (error) {
      this.announce(`The page could not load: ${error.message}`, true);
    }
    await this.route();
    this.root.dataset.ready = "true";
    (window.requestIdleCallback ?? setTimeout)(() => warmUp());
  }

  bind() {
    $("stop").addEventListener("click", () => this.stop());
    $("new-chat").addEventListener("click", () => this.newChat());
    this.transcript.addEventListener("click", (event) => this.actions.onClick(event));
    for (const suggestion of document.querySelectorAll("[data-suggestion]")) {
      suggestion.addEventListener("click", () => this.composer.fill(suggestion.dataset.suggestion));
    }
    window.addEventListener("popstate", () => this.route());
  }

  labelOf(modelId) {
    return this.picker.labelOf(modelId);
  }

  chatOptions() {
    return this.picker.options();
  }

  // -- conversations ----------------------------------------------------------------------------
  async route() {
    const params = new URLSearchParams(window.location.search);
    const id = params.get("c");
    if (id) await this.open(id, { push: false, branch: params.get("branch") });
    else this.newChat({ push: false });
  }

  async refreshList() {
    await this.list.refresh();
    if (this.view?.id) this.setTitle(this.list.title(this.view.id) || this.view.title);
  }

  refreshListSoon() {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => this.refreshList().catch(() => {}), 150);
  }

  async open(id, { push = true, branch = null } = {}) {
    this.drawer.set(false);
    if (this.view?.id === id && !branch) return;
    const token = ++this.openToken;
    let view = this.views.get(id);
    if (!view) {
      view = new ConversationView(id);
      try {
        view.show(await this.api.conversation(id, branch), (model) => this.labelOf(model));
      } catch (error) {
        if (token !== this.openToken) return;
        this.announce(error.status === 404 ? "That conversation no longer exists." : error.message, true);
        this.newChat();
        return;
      }
      if (token !== this.openToken) return;
      view.branch = branch;
    }
    if (push) history.pushState(null, "", conversationHref(id, view.branch));
    this.picker.choose(view.model);
    this.showView(view);
    this.scroll.follow(true);
    if (view.remoteStreaming) this.attach(view);
  }

  newChat({ push = true } = {}) {
    this.drawer.set(false);
    this.openToken++;
    if (push && window.location.search) history.pushState(null, "", conversationHref(null));
    this.showView(new ConversationView());
    this.composer.prompt.focus();
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
      if (!document.activeElement || document.activeElement === document.body) this.composer.prompt.focus();
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
    this.watch(view, reply);
    reply.origin = { kind: "attach" };
    view.reply = reply;
    this.stream(view, reply, null);
  }

  /** Follow `reply`'s rendering and ending in `view`. */
  watch(view, reply) {
    reply.onRender = () => view === this.view && this.scroll.follow();
    reply.onSettled = (settled) => this.onSettled(view, settled);
  }

  // -- sending and streaming --------------------------------------------------------------------
  submit() {
    const text = this.composer.text;
    if (!text.trim()) return;
    if (this.view.busy) {
      this.composer.note("A reply is on its way: wait for it to finish, or stop it (Escape), then send.");
      return;
    }
    this.composer.clear();
    this.send(this.view, text);
  }

  /** A new message at the end of the branch shown. */
  send(view, text) {
    const user = userMessage(text);
    const parent = view.id ? view.lastMessageId() : null;
    view.element.append(user);
    const body = { conversation: view.id, message: text, ...this.chatOptions() };
    if (parent) body.parent = parent;
    this.runReply(view, body, { kind: "send", text, user });
  }

  runReply(view, body, origin) {
    const reply = new AssistantReply({ modelLabel: this.labelOf(body.model) });
    this.watch(view, reply);
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
          if (!approving) return await this.actions.refused(view, reply, error);
          return reply.fail(error.message, error.code);
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
      this.budget.refresh();
    }
  }

  /** Read a response's chunks into the reply; a dropped connection ends it quietly (to follow again). */
  async consume(view, reply, response, position) {
    try {
      for await (const chunk of readChunks(response, position)) {
        if (chunk.type === "start") {
          // A continued reply goes on from what it had, and one going on after its approvals keeps
          // what it showed; a stored reply replayed whole starts over.
          const keep = chunk.messageMetadata?.continues;
          if (reply.resuming) reply.resuming = false;
          else if (keep ? reply.showsMoreThan(keep) : reply.hasContent) reply.restart(keep);
          this.adopt(view, reply, chunk);
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

  /** The `start` chunk: the server's ids for the conversation (new for a new chat), its messages. */
  adopt(view, reply, chunk) {
    const id = chunk.messageMetadata?.conversationId;
    if (id && !view.id) {
      view.id = id;
      this.views.set(id, view);
      if (view === this.view) this.list.setActive(id);
    }
    const { origin } = reply;
    if (origin.user) view.addVersion(origin.user, chunk.messageMetadata?.userMessageId, origin.previousUser);
    view.addVersion(reply.element, chunk.messageId, origin.previousReply);
    if (view.branch && origin.kind !== "attach") view.branch = null; // the newest branch is this one
    if (view === this.view) {
      history.replaceState(null, "", conversationHref(view.id, view.branch));
      this.updateComposer();
    }
    if (view.id) this.list.setStreaming(view.id, true);
    this.refreshListSoon();
  }

  onSettled(view, reply) {
    if (view !== this.view) return;
    view.markContext(this.picker.historyLimit);
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

  // -- the page -----------------------------------------------------------------------------------
  updateComposer() {
    const view = this.view;
    const streaming = Boolean(view?.busy);
    this.composer.setStreaming(streaming);
    view?.element.classList.toggle("busy", streaming);
    view?.markContext(this.picker.historyLimit);
    $("empty-state").hidden = !view?.empty;
    $("export-menu").hidden = !view?.id;
    if (view?.id) {
      $("export-md").href = this.api.exportUrl(view.id, "md", view.branch);
      $("export-json").href = this.api.exportUrl(view.id, "json", view.branch);
    }
  }

  announce(text, urgent = false) {
    this.announcer.say(text, urgent);
  }
}

new ChatApp($("chat-app")).start();
