// Reading a Server-Sent Events body with fetch + ReadableStream (EventSource cannot POST).
// The parser follows the WHATWG rules: CRLF, LF or CR line ends; an event may be split over any
// number of network reads; ":" starts a comment (the server's ": ping" heartbeat); several "data:"
// lines of one event are joined with "\n"; a blank line dispatches the event.

export const DONE = "[DONE]";

export class EventStreamParser {
  constructor() {
    this.pending = "";
    this.resetEvent();
  }

  resetEvent() {
    this.data = [];
    this.event = "";
    this.id = null;
  }

  /** Feed decoded text; returns the events it completed, as `{data, event, id}`. */
  push(text) {
    let pending = this.pending + text;
    // A CR at the very end may be the first half of a CRLF split over two reads: keep it for later.
    const held = pending.endsWith("\r") ? "\r" : "";
    if (held) pending = pending.slice(0, -1);
    if (pending.includes("\r")) pending = pending.replace(/\r\n?/g, "\n");
    const lines = pending.split("\n");
    this.pending = lines.pop() + held;
    const events = [];
    for (const line of lines) {
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  /** Call at the end of the body: an event not followed by a blank line is dropped, as the spec says. */
  end() {
    this.pending = "";
    this.resetEvent();
  }

  line(line) {
    if (line === "") {
      if (this.data.length === 0) {
        this.resetEvent();
        return null;
      }
      const event = { data: this.data.join("\n"), event: this.event || "message", id: this.id };
      this.resetEvent();
      return event;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return null;
  }
}

/**
 * The JSON chunks of a UI message stream response, as they arrive, until `data: [DONE]` or the end
 * of the body. Data that is not JSON is skipped: a newer server may send what this page does not know.
 * `position.lastId` follows the id of the last event read: where a reconnection takes up.
 */
export async function* readChunks(response, position = {}) {
  // A TextDecoder rather than a TextDecoderStream: one stream stage less for each network read.
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new EventStreamParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) {
        if (event.data === DONE) return;
        const chunk = parseJson(event.data);
        if (event.id !== null && event.id !== "") position.lastId = Number(event.id);
        if (chunk && typeof chunk.type === "string") yield chunk;
      }
    }
    parser.end();
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    console.warn("streaming: skipped an event that is not JSON", text);
    return null;
  }
}
