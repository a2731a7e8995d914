// The Vercel AI SDK's own chat client (`ai`'s AbstractChat with its DefaultChatTransport) and the app's
// tools: the demo model calls `current_time` and the client builds the tool part from the stream; a model
// asks to run `remember`, a tool that needs approval, the client answers with addToolApprovalResponse,
// and (with sendAutomaticallyWhen) sends the next request itself, which goes on with the same message.
// Usage: node ai_sdk_tools.mjs <base url> <cookie header> <csrf token>
// Prints one JSON object with each chat's messages.

import {
  AbstractChat,
  DefaultChatTransport,
  generateId,
  lastAssistantMessageIsCompleteWithApprovalResponses,
} from "ai";

import { MemoryState } from "./memory_state.mjs";

const [base, cookie, csrf] = process.argv.slice(2);

function newChat(model) {
  const transport = new DefaultChatTransport({
    api: `${base}/api/chat`,
    headers: { Cookie: cookie, "X-CSRFToken": csrf },
    body: { model },
  });
  return new AbstractChat({
    id: generateId(),
    transport,
    state: new MemoryState(),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function settled(chat, until) {
  const deadline = Date.now() + 20000;
  while (!(chat.status === "ready" && until(chat))) {
    if (chat.status === "error") throw chat.error;
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(chat.messages)}`);
    await sleep(20);
  }
}

const summary = (chat) => ({
  status: chat.status,
  error: chat.error ? String(chat.error) : null,
  messages: chat.messages.map((m) => ({ id: m.id, role: m.role, parts: m.parts, metadata: m.metadata ?? null })),
});

const timed = newChat("demo:echo");
await timed.sendMessage({ text: "What time is it?" });

const asking = newChat("approver:model");
await asking.sendMessage({ text: "Buy milk" });
const asked = summary(asking);
const waiting = asking.messages.at(-1).parts.find((p) => p.type === "tool-remember");
await asking.addToolApprovalResponse({ id: waiting.approval.id, approved: true });
await settled(asking, (chat) => chat.messages.at(-1).parts.some((p) => p.type === "tool-remember" && p.state === "output-available"));

const denying = newChat("approver:model");
await denying.sendMessage({ text: "Sell the car" });
const denied = denying.messages.at(-1).parts.find((p) => p.type === "tool-remember");
await denying.addToolApprovalResponse({ id: denied.approval.id, approved: false, reason: "No." });
await settled(denying, (chat) => chat.messages.at(-1).parts.some((p) => p.type === "tool-remember" && p.state === "output-denied"));

console.log(JSON.stringify({ timed: summary(timed), asked, approved: summary(asking), denied: summary(denying) }));
