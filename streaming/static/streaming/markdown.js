// Markdown for model output, rendered progressively and sanitized.
//
// Safety, in two layers: HTML written by the model is shown as text (the renderer escapes it), and
// everything marked produces goes through DOMPurify before it reaches the page (it drops
// `javascript:` links, event handlers, and the tags listed in FORBID_TAGS). A link that lost its
// target is shown as plain text. Images are shown as links: a remote image loads by itself, so a
// reply could otherwise send data to any server. The one form control is a task list's checkbox,
// which marked writes itself (the model's own HTML is escaped): it is kept disabled, and nothing else.
//
// Speed: a growing reply is not re-rendered whole. The text is split into top-level blocks
// (paragraphs, lists, code blocks, tables); blocks before the last one are final, are rendered once
// and stay in the page; only the last, still growing block is rendered again on each update. Final
// blocks of code are highlighted (code.js), once each.

/* global marked, DOMPurify */

import { highlight } from "./code.js";

const PURIFY = {
  FORBID_TAGS: ["style", "img", "svg", "math", "form", "button", "textarea", "select", "iframe"],
  FORBID_ATTR: ["style"],
  ALLOW_DATA_ATTR: false,
  SANITIZE_NAMED_PROPS: true, // ids and names cannot clobber the page's globals
  RETURN_DOM_FRAGMENT: true,
};

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// A task list's checkbox: disabled, and only that (no name, value or form to send anything with).
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName !== "INPUT") return;
  const checked = node.hasAttribute("checked");
  for (const { name } of [...node.attributes]) node.removeAttribute(name);
  node.setAttribute("type", "checkbox");
  node.setAttribute("disabled", "");
  if (checked) node.setAttribute("checked", "");
});

function createMarked() {
  const md = new marked.Marked({ gfm: true, breaks: false });
  md.use({
    renderer: {
      html({ text, block }) {
        return block ? `<p>${escapeHtml(text.trim())}</p>\n` : escapeHtml(text);
      },
      image({ href, text }) {
        const label = escapeHtml(text || href || "image");
        return href ? `<a href="${escapeHtml(href)}">Image: ${label}</a>` : label;
      },
    },
  });
  return md;
}

let instance = null;
function markdown() {
  instance ??= createMarked();
  return instance;
}

/**
 * Sanitized DOM for some top-level tokens, with copy buttons on code and safe link targets; `final`
 * tokens will not change any more, and their code is highlighted.
 */
function renderTokens(tokens, final = false) {
  const html = markdown().parser(tokens);
  const fragment = DOMPurify.sanitize(html, PURIFY);
  for (const link of fragment.querySelectorAll("a")) {
    if (!link.hasAttribute("href")) {
      link.replaceWith(...link.childNodes); // its target was unsafe and removed: it is no link
      continue;
    }
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
  }
  for (const box of fragment.querySelectorAll("input[type=checkbox]")) {
    box.setAttribute("aria-label", "Task"); // (its state, checked or not, is read with it)
    box.closest("li")?.classList.add("task");
  }
  for (const table of fragment.querySelectorAll("table")) wrapTable(table);
  for (const pre of fragment.querySelectorAll("pre")) decorateCode(pre, final);
  return fragment;
}

/** A wide table scrolls sideways in a region of its own, rather than breaking its words. */
function wrapTable(table) {
  const region = document.createElement("div");
  region.className = "table-scroll";
  region.tabIndex = 0; // keyboard users can scroll it too
  region.setAttribute("role", "region");
  region.setAttribute("aria-label", "Table");
  table.replaceWith(region);
  region.append(table);
}

function decorateCode(pre, final) {
  const code = pre.querySelector("code");
  const language = /(?:^|\s)language-([\w+#.-]+)/.exec(code?.className ?? "")?.[1] ?? "";
  const block = document.createElement("div");
  block.className = "code-block";
  const head = document.createElement("div");
  head.className = "code-head";
  const label = document.createElement("span");
  label.className = "code-language";
  label.textContent = language || "text";
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy-code";
  copy.dataset.action = "copy-code";
  copy.textContent = "Copy";
  copy.setAttribute("aria-label", language ? `Copy ${language} code` : "Copy code");
  head.append(label, copy);
  pre.replaceWith(block);
  pre.tabIndex = 0; // a long line scrolls sideways: keyboard users can scroll it too
  block.append(head, pre);
  if (final && code && language) highlight(code, language);
}

function lastContentIndex(tokens) {
  for (let i = tokens.length - 1; i >= 0; i--) if (tokens[i].type !== "space") return i;
  return -1;
}

export class MarkdownView {
  constructor(element) {
    this.element = element;
    this.reset();
  }

  /** The text was final and grows again (a reply that goes on): its last block may change after all. */
  reopen() {
    this.reopened = true;
  }

  reset() {
    this.reopened = false;
    this.element.replaceChildren();
    this.text = "";
    this.settledLength = 0; // characters of text rendered as final blocks
    this.tailNodes = [];
    this.links = Object.create(null); // reference-style link definitions seen so far
  }

  /** Show `text`. While `final` is false its last block may still grow and is rendered again later. */
  update(text, final = false) {
    text = text.replace(/\r\n?/g, "\n");
    if (text === this.text && !final) return;
    if (this.reopened || !text.startsWith(this.text.slice(0, this.settledLength))) this.reset();
    this.text = text;
    const tokens = this.lex(text.slice(this.settledLength));
    const cut = final ? tokens.length : Math.max(0, lastContentIndex(tokens));
    for (const node of this.tailNodes) node.remove();
    const settled = tokens.slice(0, cut);
    if (settled.length) {
      this.element.append(renderTokens(settled, true));
      this.settledLength += settled.reduce((length, token) => length + token.raw.length, 0);
    }
    const fragment = renderTokens(tokens.slice(cut), final);
    this.tailNodes = [...fragment.childNodes];
    this.element.append(fragment);
  }

  lex(text) {
    const lexer = new marked.Lexer(markdown().defaults);
    Object.assign(lexer.tokens.links, this.links);
    const tokens = lexer.lex(text);
    Object.assign(this.links, tokens.links);
    return tokens;
  }
}

/** Compile marked's and DOMPurify's internals while the page is idle, not in a reply's first frame. */
export function warmUp() {
  renderTokens(
    markdown().lexer(
      "# a\n\n**b** `c` [d](https://example.com)\n\n- e\n\n```js\nf\n```\n\n| g |\n|---|\n| h |\n",
    ),
  );
}

/** The whole of `text` rendered at once (a stored reply). */
export function renderMarkdown(element, text) {
  new MarkdownView(element).update(text, true);
}
