// The conversation list: newest first and grouped by age, loaded a page at a time as it scrolls,
// searchable (the server looks through titles and text), with each conversation's cost, rename and
// delete. It is one Tab stop: the arrow keys move through it (roving.js), F2 renames, Delete deletes.

import { actionButton, icon, make } from "./dom.js";
import { usd } from "./format.js";
import { RovingList } from "./roving.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const SEARCH_DELAY_MS = 250; // after the last key press: one request per pause, not per letter

function ageGroup(isoDate, now) {
  const startOfToday = new Date(now);
  startOfToday.setHours(0, 0, 0, 0);
  const time = new Date(isoDate).getTime();
  if (time >= startOfToday.getTime()) return "Today";
  if (time >= startOfToday.getTime() - DAY_MS) return "Yesterday";
  if (time >= startOfToday.getTime() - 7 * DAY_MS) return "Previous 7 days";
  if (time >= startOfToday.getTime() - 30 * DAY_MS) return "Previous 30 days";
  return "Older";
}

/** The page's address for a conversation (and a branch of it: the message whose branch is shown). */
export function conversationHref(id, branch = null) {
  const url = new URL(window.location.href);
  url.search = "";
  url.hash = "";
  if (id) url.searchParams.set("c", id);
  if (id && branch) url.searchParams.set("branch", branch);
  return url.pathname + url.search;
}

export class ConversationList {
  /**
   * `elements`: list (where the groups go), scroller, search (the search box), status (a polite
   * line: empty, loading, no match) and end (a mark after the last row: in view, the next page loads).
   * `handlers`: page({query, cursor}), open(id), rename(id, title), remove(id, title), and
   * announce(text) for what a search found (the page's one live region says it).
   */
  constructor(elements, handlers) {
    Object.assign(this, elements);
    this.handlers = handlers;
    this.conversations = [];
    this.next = null;
    this.query = "";
    this.loading = null;
    this.activeId = null;
    this.streamingIds = new Set();
    this.roving = new RovingList(this.list, "li[data-id]", {
      F2: (row) => this.startRename(row),
      Delete: (row) => this.handlers.remove(row.dataset.id, this.title(row.dataset.id)),
    });
    this.list.addEventListener("click", (event) => this.onClick(event));
    this.search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.find(this.search.value), SEARCH_DELAY_MS);
    });
    this.search.form?.addEventListener("submit", (event) => {
      event.preventDefault();
      this.find(this.search.value);
    });
    new IntersectionObserver((entries) => entries[0].isIntersecting && this.more(), {
      root: this.scroller,
      rootMargin: "200px",
    }).observe(this.end);
  }

  /** The list of the chat page's template. */
  static fromPage(handlers) {
    const ids = ["list", "nav", "search", "status", "end"].map((name) => `conversation-${name}`);
    const [list, scroller, search, status, end] = ids.map((id) => document.getElementById(id));
    return new ConversationList({ list, scroller, search, status, end }, handlers);
  }

  title(id) {
    return this.conversations.find((c) => c.id === id)?.title ?? "";
  }

  /** The first page again (after a reply, a rename, a delete), keeping the pages loaded below it. */
  async refresh() {
    const query = this.query;
    const page = await this.handlers.page({ query });
    if (query !== this.query) return;
    const fresh = new Set(page.conversations.map((c) => c.id));
    const oldest = page.conversations.at(-1)?.updated_at ?? "";
    const below = this.conversations.filter((c) => !fresh.has(c.id) && c.updated_at < oldest);
    this.conversations = [...page.conversations, ...below];
    if (!below.length) this.next = page.next;
    this.render();
  }

  /** Show the conversations that have `query` in their title or text (all of them for none). */
  async find(query) {
    query = query.trim().replace(/\s+/g, " ");
    if (query === this.query) return;
    this.query = query;
    this.conversations = [];
    this.next = null;
    this.say(query ? "Searching…" : "");
    let page;
    try {
      page = await this.handlers.page({ query });
    } catch (error) {
      if (query === this.query) this.say(`The search failed: ${error.message}`);
      return;
    }
    if (query !== this.query) return; // a newer search went out meanwhile
    this.conversations = page.conversations;
    this.next = page.next;
    this.render();
    this.handlers.announce(this.status.textContent || "All conversations.");
  }

  /** The next page, when the end of the list comes into view. */
  async more() {
    if (!this.next || this.loading) return;
    const query = this.query;
    this.say("Loading more conversations…");
    this.loading = this.handlers.page({ query, cursor: this.next });
    try {
      const page = await this.loading;
      if (query !== this.query) return;
      const known = new Set(this.conversations.map((c) => c.id));
      this.conversations.push(...page.conversations.filter((c) => !known.has(c.id)));
      this.next = page.next;
      this.render();
    } catch {
      this.say("More conversations could not be loaded: scroll again to retry.");
    } finally {
      this.loading = null;
    }
  }

  say(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }

  setActive(id) {
    this.activeId = id;
    for (const link of this.list.querySelectorAll(".conversation-link")) {
      if (link.closest("li").dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    if (!this.list.contains(document.activeElement)) this.roving.hold(id);
  }

  setStreaming(id, streaming) {
    if (streaming) this.streamingIds.add(id);
    else this.streamingIds.delete(id);
    this.list.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.classList.toggle("streaming", streaming);
  }

  render() {
    if (this.list.querySelector(".rename-input")) return; // do not pull the field from under the user
    const hadFocus = document.activeElement?.closest?.("li[data-id]");
    const focusKey = hadFocus && [hadFocus.dataset.id, document.activeElement.dataset.action ?? "link"];
    const groups = new Map();
    const now = Date.now();
    for (const conversation of this.conversations) {
      const group = this.query ? "Search results" : ageGroup(conversation.updated_at, now);
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(conversation);
    }
    const sections = [...groups].map(([name, conversations]) => this.group(name, conversations));
    this.list.replaceChildren(...sections);
    this.roving.hold(this.roving.current ?? this.activeId);
    if (!this.conversations.length) {
      this.say(this.query ? `No conversation has “${this.query}”.` : "No conversations yet.");
    } else {
      this.say(this.query ? `${this.conversations.length}${this.next ? "+" : ""} found` : "");
    }
    if (focusKey) this.restoreFocus(...focusKey);
    // A tall screen may show the end of a page at once: no scroll would ever ask for the next one.
    if (this.next && this.nearEnd()) setTimeout(() => this.more());
  }

  nearEnd() {
    return this.end.getBoundingClientRect().top < this.scroller.getBoundingClientRect().bottom + 200;
  }

  group(name, conversations) {
    const section = make("section", "conversation-group");
    const heading = make("h3", "group-heading", name);
    heading.id = `group-${name.toLowerCase().replace(/\W+/g, "-")}`;
    const list = make("ul", "conversation-items");
    list.setAttribute("aria-labelledby", heading.id);
    list.append(...conversations.map((c) => this.item(c)));
    section.append(heading, list);
    return section;
  }

  restoreFocus(id, action) {
    const item = this.list.querySelector(`li[data-id="${CSS.escape(id)}"]`);
    const target =
      action === "link"
        ? item?.querySelector(".conversation-link")
        : item?.querySelector(`[data-action="${action}"]`);
    target?.focus();
  }

  item(conversation) {
    const title = conversation.title || "Untitled";
    const li = make("li", "conversation");
    li.dataset.id = conversation.id;
    li.classList.toggle("streaming", this.streamingIds.has(conversation.id));
    const link = make("a", "conversation-link");
    link.href = conversationHref(conversation.id);
    link.setAttribute("aria-describedby", "list-keys");
    const text = make("span", "conversation-text");
    text.append(make("span", "conversation-title", title));
    if (conversation.match) text.append(make("span", "conversation-match", conversation.match));
    link.append(text);
    if (conversation.cost != null) {
      const cost = make("span", "conversation-cost", usd(conversation.cost));
      link.append(make("span", "visually-hidden", ", cost "), cost);
    }
    link.title = title;
    if (conversation.id === this.activeId) link.setAttribute("aria-current", "page");
    const actions = make("span", "conversation-actions");
    actions.append(this.action("rename", `Rename “${title}”`), this.action("delete", `Delete “${title}”`));
    li.append(link, actions);
    return li;
  }

  action(name, label) {
    const button = actionButton(name, label, "", "icon-button");
    button.title = label;
    button.append(icon(name === "rename" ? "edit" : "trash"));
    return button;
  }

  onClick(event) {
    const item = event.target.closest("li[data-id]");
    if (!item) return;
    const id = item.dataset.id;
    const link = event.target.closest(".conversation-link");
    if (link && !(event.ctrlKey || event.metaKey || event.shiftKey || event.button === 1)) {
      event.preventDefault(); // a modified click opens a new tab, as a link does
      this.handlers.open(id);
      return;
    }
    const action = event.target.closest("button[data-action]")?.dataset.action;
    if (action === "rename") this.startRename(item);
    else if (action === "delete") this.handlers.remove(id, this.title(id));
  }

  startRename(item) {
    const id = item.dataset.id;
    const link = item.querySelector(".conversation-link");
    const input = make("input", "rename-input");
    input.value = this.title(id);
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title");
    let finished = false;
    const finish = async (save) => {
      if (finished) return;
      finished = true;
      const title = input.value.trim();
      if (save && title && title !== this.title(id)) {
        try {
          await this.handlers.rename(id, title);
        } catch {
          // handlers.rename reports the error; the list shows the old title again
        }
      }
      input.remove();
      link.hidden = false;
      this.render();
      this.restoreFocus(id, "link");
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    link.hidden = true;
    link.after(input);
    input.focus();
    input.select();
  }
}
