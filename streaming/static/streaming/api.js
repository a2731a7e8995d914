// The JSON API of the streaming app: URLs from the page (so the app works under any prefix), the
// CSRF header, and errors as ApiError with the server's readable message.

const ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }

  /** The error a non-2xx response describes: `{"error": {"code", "message", "field"?}}` or its status. */
  static async from(response) {
    let error = null;
    try {
      error = (await response.json()).error;
    } catch {
      // Not JSON: a proxy's error page, or an HTML 500 page.
    }
    const code = error?.code ?? `http_${response.status}`;
    const message = error?.message ?? describeStatus(response.status);
    const apiError = new ApiError(response.status, code, message, error?.field);
    apiError.retryAfter = Number(response.headers.get("Retry-After")) || null;
    return apiError;
  }
}

function describeStatus(status) {
  if (status === 401 || status === 403) return "Your session has ended. Reload the page and log in again.";
  if (status === 404) return "Not found: it may have been deleted in another tab.";
  if (status >= 500) return `The server failed (HTTP ${status}). Try again in a moment.`;
  return `The request failed (HTTP ${status}).`;
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return null;
}

export class Api {
  /** `root` carries the URLs as data attributes, rendered by `{% url %}` in the template. */
  constructor(root) {
    const data = root.dataset;
    this.urls = {
      models: data.modelsUrl,
      conversations: data.conversationsUrl,
      conversation: data.conversationUrl,
      chat: data.chatUrl,
      stop: data.stopUrl,
      messageStream: data.messageStreamUrl,
      approvals: data.approvalsUrl,
      export: data.exportUrl,
      budget: data.budgetUrl,
    };
    this.tokenInput = document.querySelector("input[name=csrfmiddlewaretoken]");
  }

  csrfToken() {
    // The cookie is the freshest (a login in another tab rotates it); it is unreadable when
    // CSRF_COOKIE_HTTPONLY is on, and then the form token of the page is used.
    return readCookie("csrftoken") ?? this.tokenInput?.value ?? "";
  }

  headers(json) {
    const headers = { "X-CSRFToken": this.csrfToken(), Accept: "application/json" };
    if (json) headers["Content-Type"] = "application/json";
    return headers;
  }

  async request(method, url, body) {
    const response = await fetch(url, {
      method,
      headers: this.headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    if (!response.ok) throw await ApiError.from(response);
    return response.status === 204 ? null : response.json();
  }

  conversationUrl(id) {
    return this.urls.conversation.replace(ID_PLACEHOLDER, encodeURIComponent(id));
  }

  models() {
    return this.request("GET", this.urls.models);
  }

  /** A page of conversations, newest first: `{conversations, next}`; `query` searches their text. */
  conversations({ query = "", cursor = null } = {}) {
    const params = new URLSearchParams();
    if (query) params.set("q", query);
    if (cursor) params.set("cursor", cursor);
    const search = params.size ? `?${params}` : "";
    return this.request("GET", this.urls.conversations + search);
  }

  /** A conversation with the messages of one branch: through `branch` (a message id), or the newest. */
  conversation(id, branch = null) {
    const search = branch ? `?${new URLSearchParams({ branch })}` : "";
    return this.request("GET", this.conversationUrl(id) + search);
  }

  exportUrl(id, format, branch = null) {
    const params = new URLSearchParams({ format });
    if (branch) params.set("branch", branch);
    return `${this.urls.export.replace(ID_PLACEHOLDER, encodeURIComponent(id))}?${params}`;
  }

  budget() {
    return this.request("GET", this.urls.budget);
  }

  rename(id, title) {
    return this.request("PATCH", this.conversationUrl(id), { title });
  }

  remove(id) {
    return this.request("DELETE", this.conversationUrl(id));
  }

  /** Ask the server to stop a streaming reply; true when it accepted (202), false when it had ended. */
  async stop(messageId) {
    try {
      await this.request("POST", this.urls.stop.replace(ID_PLACEHOLDER, encodeURIComponent(messageId)));
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) return false;
      throw error;
    }
  }

  /**
   * Attach to a reply: its chunks after `lastId` (all of them when null), live while it streams, or
   * replayed from storage once it ended (then they start again with `start`).
   */
  follow(messageId, lastId, signal) {
    const headers = { Accept: "text/event-stream" };
    if (lastId != null) headers["Last-Event-ID"] = String(lastId);
    const url = this.urls.messageStream.replace(ID_PLACEHOLDER, encodeURIComponent(messageId));
    return fetch(url, { headers, credentials: "same-origin", signal });
  }

  /** Answer a reply's approval requests: 202 while others wait, else the reply going on, as `chat`. */
  approve(messageId, body, signal) {
    return fetch(this.urls.approvals.replace(ID_PLACEHOLDER, encodeURIComponent(messageId)), {
      method: "POST",
      headers: { ...this.headers(true), Accept: "text/event-stream" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  }

  /** Start a reply: the raw response, to be read as an event stream when it is ok. */
  chat(body, signal) {
    return fetch(this.urls.chat, {
      method: "POST",
      headers: { ...this.headers(true), Accept: "text/event-stream" },
      body: JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  }
}
