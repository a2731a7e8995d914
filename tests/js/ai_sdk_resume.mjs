// The Vercel AI SDK's own chat client (`ai`'s AbstractChat with its DefaultChatTransport) against the
// app: a chat named with the SDK's own ids, a second chat instance that resumes the reply mid-stream
// (`resumeStream()`, what `useChat({ resume: true })` does on load), and the 204 when nothing streams.
// Usage: node ai_sdk_resume.mjs <base url> <cookie header> <csrf token> <message>
// Prints one JSON object with what each chat ended with.

import { AbstractChat, DefaultChatTransport, generateId } from "ai";

import { MemoryState } from "./memory_state.mjs";

const [base, cookie, csrf, text] = process.argv.slice(2);

function newChat(id) {
  const transport = new DefaultChatTransport({
    api: `${base}/api/chat`,
    headers: { Cookie: cookie, "X-CSRFToken": csrf },
    body: { model: "demo:echo" },
  });
  return new AbstractChat({ id, transport, state: new MemoryState() });
}

function replyText(chat) {
  const reply = chat.messages.findLast((m) => m.role === "assistant");
  return reply ? reply.parts.filter((p) => p.type === "text").map((p) => p.text).join("") : "";
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const id = generateId();
const first = newChat(id);
const sending = first.sendMessage({ text });
const deadline = Date.now() + 20000;
while (replyText(first).length < 40) {
  if (Date.now() > deadline) throw new Error(`no reply text: ${JSON.stringify(first.messages)}`);
  await sleep(20);
}
const seenByFirst = replyText(first).length;

// A second tab (or a reload) of the same chat, mid-reply.
const second = newChat(id);
await second.resumeStream();
await sending;

// Nothing streams now: the resume URL answers 204 and the chat stays as it was.
const idle = newChat(id);
await idle.resumeStream();

console.log(
  JSON.stringify({
    id,
    seenByFirst,
    first: { status: first.status, text: replyText(first), roles: first.messages.map((m) => m.role) },
    second: {
      status: second.status,
      text: replyText(second),
      roles: second.messages.map((m) => m.role),
      error: second.error ? String(second.error) : null,
      metadata: second.messages.at(-1)?.metadata ?? null,
    },
    idle: { status: idle.status, messages: idle.messages.length, error: idle.error ? String(idle.error) : null },
  }),
);
