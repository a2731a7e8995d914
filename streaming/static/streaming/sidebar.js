// The conversation list: grouped by age, newest first, with rename and delete for each.

const DAY_MS = 24 * 60 * 60 * 1000;

function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `#icon-${name}`);
  svg.append(use);
  return svg;
}

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

export function conversationHref(id) {
  const url = new URL(window.location.href);
  url.search = "";
  url.hash = "";
  if (id) url.searchParams.set("c", id);
  return url.pathname + url.search;
}

export class ConversationList {
  /**
   * `container` receives the list; `handlers` has open(id), rename(id, title) and remove(id, title),
   * the last two returning promises.
   */
  constructor(container, emptyNote, handlers) {
    this.container = container;
    this.emptyNote = emptyNote;
    this.handlers = handlers;
    this.conversations = [];
    this.activeId = null;
    this.streamingIds = new Set();
    container.addEventListener("click", (event) => this.onClick(event));
  }

  update(conversations) {
    this.conversations = conversations;
    this.render();
  }

  title(id) {
    return this.conversations.find((c) => c.id === id)?.title ?? "";
  }

  setActive(id) {
    this.activeId = id;
    for (const link of this.container.querySelectorAll(".conversation-link")) {
      if (link.closest("li").dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  setStreaming(id, streaming) {
    if (streaming) this.streamingIds.add(id);
    else this.streamingIds.delete(id);
    this.container.querySelector(`li[data-id="${CSS.escape(id)}"]`)?.classList.toggle("streaming", streaming);
  }

  render() {
    if (this.container.querySelector(".rename-input")) return; // do not pull the field from under the user
    const hadFocus = document.activeElement?.closest?.("li[data-id]");
    const focusKey = hadFocus && [hadFocus.dataset.id, document.activeElement.dataset.action ?? "link"];
    const now = Date.now();
    const groups = new Map();
    for (const conversation of this.conversations) {
      const group = ageGroup(conversation.updated_at, now);
      if (!groups.has(group)) groups.set(group, []);
      groups.get(group).push(conversation);
    }
    const sections = [];
    for (const [name, conversations] of groups) {
      const section = make("section", "conversation-group");
      const heading = make("h3", "group-heading", name);
      heading.id = `group-${name.toLowerCase().replace(/\W+/g, "-")}`;
      const list = make("ul", "conversation-items");
      list.setAttribute("aria-labelledby", heading.id);
      list.append(...conversations.map((c) => this.item(c)));
      section.append(heading, list);
      sections.push(section);
    }
    this.container.replaceChildren(...sections);
    this.emptyNote.hidden = this.conversations.length > 0;
    if (focusKey) this.restoreFocus(...focusKey);
  }

  restoreFocus(id, action) {
    const item = this.container.querySelector(`li[data-id="${CSS.escape(id)}"]`);
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
    link.append(make("span", "conversation-title", title));
    link.title = title;
    if (conversation.id === this.activeId) link.setAttribute("aria-current", "page");
    const actions = make("span", "conversation-actions");
    actions.append(this.action("rename", `Rename “${title}”`), this.action("delete", `Delete “${title}”`));
    li.append(link, actions);
    return li;
  }

  action(name, label) {
    const button = make("button", "icon-button");
    button.type = "button";
    button.dataset.action = name;
    button.setAttribute("aria-label", label);
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
