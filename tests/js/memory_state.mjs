// A chat's state in memory, for `ai`'s AbstractChat outside a UI framework (what useChat keeps in React
// state): the scripts that drive the AI SDK's client against the app share it.

export class MemoryState {
  constructor() {
    this.messages = [];
    this.status = "ready";
    this.error = undefined;
    this.experimental_queuedMessages = [];
  }
  pushMessage(message) {
    this.messages = [...this.messages, message];
  }
  popMessage() {
    this.messages = this.messages.slice(0, -1);
  }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), this.snapshot(message), ...this.messages.slice(index + 1)];
  }
  snapshot(value) {
    return structuredClone(value);
  }
}
