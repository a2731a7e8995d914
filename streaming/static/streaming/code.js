// Syntax highlighting of code blocks. highlight.js is not part of the page: a worker (highlighter.js)
// loads it the first time a reply shows a code block that names its language, and highlights there,
// off the main thread. A block is highlighted once, when it is final: a growing block stays plain
// text until the next one starts. What comes back is spans with classes around escaped text; it
// still passes through DOMPurify, which keeps only those.

/* global DOMPurify */

const ONLY_SPANS = { ALLOWED_TAGS: ["span"], ALLOWED_ATTR: ["class"], RETURN_DOM_FRAGMENT: true };
const LONGEST = 100_000; // characters: a longer block stays plain (its highlighting would be slow to come)

let worker = null;
let failed = false;
let nextId = 0;
const waiting = new Map(); // request id -> [code element, its text]

function highlighter() {
  const url = document.getElementById("chat-app")?.dataset.highlighterUrl;
  if (!worker && url && !failed) {
    worker = new Worker(url, { type: "module" });
    worker.addEventListener("message", ({ data }) => show(data));
    worker.addEventListener("error", () => {
      failed = true; // offline, or blocked: code stays plain, and readable
      waiting.clear();
    });
  }
  return worker;
}

/** Highlight the `code` element as `language`, once the worker answers (if it knows the language). */
export function highlight(code, language) {
  const text = code.textContent;
  if (text.length > LONGEST || !highlighter()) return;
  const id = ++nextId;
  waiting.set(id, [code, text]);
  worker.postMessage({ id, text, language });
}

function show({ id, html }) {
  const [code, text] = waiting.get(id) ?? [];
  waiting.delete(id);
  if (html === null || !code?.isConnected || code.textContent !== text) return;
  code.replaceChildren(DOMPurify.sanitize(html, ONLY_SPANS));
  code.classList.add("hljs");
}
