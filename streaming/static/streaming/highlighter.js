// A worker that highlights code with highlight.js (vendored, its common languages): the library's
// 130 KB are fetched, compiled and run here, off the page's main thread, so that loading it and
// highlighting a long block never hold up the page. In: {id, text, language}; out: {id, html}, the
// library's spans around escaped text, or html null for a language it does not know.

import hljs from "./vendor/highlight.min.js";

self.addEventListener("message", ({ data: { id, text, language } }) => {
  let html = null;
  if (hljs.getLanguage(language)) html = hljs.highlight(text, { language, ignoreIllegals: true }).value;
  self.postMessage({ id, html });
});
