// Editing a sent message, in place: its bubble becomes a box with the text, Send makes a new version
// of the message (the earlier one stays, a version away), Cancel or Escape leaves it as it was.

import { make } from "./dom.js";

/**
 * Edit the user message `article` (starting from `text`, by default its own). `send(text)` is called
 * with the new text; `enterIsNewLine()` says whether Enter makes a new line here (a touch screen)
 * instead of sending, as in the message box.
 */
export function editMessage(article, { send, enterIsNewLine, text = null }) {
  if (article.querySelector(".edit-form")) return;
  const bubble = article.querySelector(".bubble");
  const tools = article.querySelector(".message-tools");
  const original = bubble.textContent;
  const form = make("form", "edit-form");
  const box = make("textarea", "edit-box");
  box.value = text ?? original;
  box.rows = Math.min(12, box.value.split("\n").length + 1);
  box.setAttribute("aria-label", "Edit your message");
  const cancel = make("button", "button", "Cancel");
  cancel.type = "button";
  const save = make("button", "button primary", "Send");
  save.type = "submit";
  const buttons = make("div", "edit-buttons");
  buttons.append(cancel, save);
  form.append(box, buttons);

  const close = () => {
    form.remove();
    bubble.hidden = tools.hidden = false;
    article.querySelector("[data-action=edit]")?.focus();
  };
  cancel.addEventListener("click", close);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const edited = box.value;
    if (!edited.trim() || edited === original) return close();
    form.remove();
    bubble.hidden = tools.hidden = false;
    send(edited);
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !enterIsNewLine()) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  bubble.hidden = tools.hidden = true;
  bubble.after(form);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}
