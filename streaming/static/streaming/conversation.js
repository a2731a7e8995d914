// One conversation's transcript: its messages, and the reply streaming into it, if any.

import { AssistantReply, userMessage } from "./reply.js";

export class ConversationView {
  constructor(id = null) {
    this.id = id;
    this.title = "";
    this.model = null;
    this.controller = null; // the AbortController of the reply this page is streaming
    this.reply = null;
    this.remoteStreaming = null; // the id of a reply streaming elsewhere (another tab or device)
    this.element = document.createElement("div");
    this.element.className = "messages";
    this.element.setAttribute("role", "log");
    this.element.setAttribute("aria-live", "polite");
    this.element.setAttribute("aria-label", "Messages");
  }

  /** A reply streams into this conversation, from this page or from elsewhere. */
  get busy() {
    return this.controller !== null || this.remoteStreaming !== null;
  }

  get empty() {
    return this.element.childElementCount === 0;
  }

  /** Show a conversation as the API returns it; `labelOf` names a model id. */
  show(data, labelOf) {
    this.title = data.title;
    this.model = data.model;
    const articles = data.messages.map((message) =>
      message.role === "user"
        ? userMessage(message.content)
        : AssistantReply.fromStored(message, labelOf(message.model)).element,
    );
    this.element.replaceChildren(...articles);
    const streaming = data.messages.findLast((m) => m.role === "assistant" && m.status === "streaming");
    this.remoteStreaming = this.controller ? null : (streaming?.id ?? null);
  }
}
