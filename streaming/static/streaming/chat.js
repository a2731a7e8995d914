// A minimal chat page on the SSE stream: the full page (markdown, sidebar) comes with the chat page work.
(function () {
  "use strict";
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  const $ = (id) => document.getElementById(id);
  let conversation = null;
  let controller = null;
  let streamingMessageId = null;

  async function loadModels() {
    const response = await fetch("api/models");
    const data = await response.json();
    for (const model of data.models) {
      const option = new Option(model.label, model.id, false, model.id === data.default);
      option.dataset.reasoning = model.reasoning;
      $("model").add(option);
    }
  }

  function addMessage(role, text) {
    const node = document.createElement("div");
    node.className = "message " + role;
    node.textContent = text;
    $("messages").appendChild(node);
    return node;
  }

  async function send(text) {
    addMessage("user", text);
    const reply = addMessage("assistant", "");
    const meta = document.createElement("div");
    meta.className = "meta";
    controller = new AbortController();
    $("stop").hidden = false;
    $("send").disabled = true;
    try {
      const response = await fetch("api/chat", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
        body: JSON.stringify({ conversation, message: text, model: $("model").value, reasoning: $("reasoning").checked }),
        signal: controller.signal,
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({ error: { message: response.statusText } }));
        reply.classList.add("error");
        reply.textContent = body.error.message;
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data || data === "[DONE]") continue;
          handle(JSON.parse(data), reply, meta);
        }
      }
    } catch (error) {
      if (error.name !== "AbortError") { reply.classList.add("error"); reply.textContent += "\n" + error.message; }
      else meta.textContent = "stopped";
    } finally {
      controller = null;
      $("stop").hidden = true;
      $("send").disabled = false;
      reply.after(meta);
    }
  }

  function handle(chunk, reply, meta) {
    if (chunk.type === "start") { conversation = chunk.messageMetadata.conversationId; streamingMessageId = chunk.messageId; }
    else if (chunk.type === "text-delta") reply.textContent += chunk.delta;
    else if (chunk.type === "error") { reply.classList.add("error"); reply.textContent += "\n" + chunk.errorText; }
    else if (chunk.type === "finish" || chunk.type === "message-metadata") {
      const m = chunk.messageMetadata;
      const usage = m.usage ? `${m.usage.inputTokens} in / ${m.usage.outputTokens} out${m.usage.estimated ? " (estimated)" : ""}` : "";
      meta.textContent = [m.status, usage, m.ttftMs != null ? `first token ${m.ttftMs} ms` : ""].filter(Boolean).join(" · ");
    }
  }

  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("prompt").value.trim();
    if (!text || controller) return;
    $("prompt").value = "";
    send(text);
  });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  $("stop").addEventListener("click", () => {
    if (streamingMessageId) fetch(`api/messages/${streamingMessageId}/stop`, { method: "POST", headers: { "X-CSRFToken": csrf } });
    if (controller) controller.abort();
  });
  $("new-chat").addEventListener("click", () => { conversation = null; $("messages").replaceChildren(); });
  loadModels();
})();
