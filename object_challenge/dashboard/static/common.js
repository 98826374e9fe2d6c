// Shared by the dashboard and the puzzle page. No data is ever written as HTML:
// every string from the API goes into the page through textContent (OC.el).
"use strict";

const OC = (() => {
  const KEY = "oc.token";

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
      this.code = this.body.error || "";
    }
  }

  const token = () => sessionStorage.getItem(KEY);
  const auth = () => ({ Authorization: `Token ${token()}` });

  async function api(path, opts = {}) {
    const headers = Object.assign(auth(), opts.headers || {});
    let body = opts.body;
    if (body !== undefined && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const res = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store", signal: opts.signal });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_e) {
      data = { message: text };
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return { status: res.status, data, headers: res.headers };
  }

  // el("td", {class: "x", onclick: f}, "text", child, ...): strings become text nodes
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function notice(message, kind) {
    const box = document.getElementById("notice");
    if (!message) {
      box.hidden = true;
      return;
    }
    box.textContent = message;
    box.className = `notice ${kind || "error"}`;
    box.hidden = false;
  }

  // Server-Sent Events read with fetch(), because EventSource cannot send Authorization.
  // Calls onOpen(response) once the headers arrived and onEvent({event, data, id}) per
  // message; resolves when the server ends the stream, rejects on errors or abort.
  async function sse(path, { signal, onOpen, onEvent, headers }) {
    const res = await fetch(path, {
      headers: Object.assign(auth(), { Accept: "text/event-stream" }, headers || {}),
      cache: "no-store",
      signal,
    });
    if (!res.ok) {
      let body = null;
      try {
        body = await res.json();
      } catch (_e) {
        body = null;
      }
      throw new ApiError(res.status, body);
    }
    if (onOpen) onOpen(res);
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = { event: "message", data: [], id: null };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") message.data.push(val);
          else if (field === "event") message.event = val;
          else if (field === "id") message.id = val;
        }
        if (message.data.length) onEvent({ event: message.event, id: message.id, data: message.data.join("\n") });
      }
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Ask for a token once per tab; then onReady(identity from /newapi/whoami).
  function start(onReady) {
    const form = document.getElementById("login");
    const logout = document.getElementById("logout");
    const who = document.getElementById("who");
    logout.addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      location.reload();
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = document.getElementById("token-input").value.trim();
      if (!value) return;
      sessionStorage.setItem(KEY, value);
      form.hidden = true;
      check();
    });
    async function check() {
      if (!token()) {
        form.hidden = false;
        return;
      }
      try {
        const { data } = await api("/newapi/whoami");
        who.textContent = `${data.name} (${data.role})`;
        logout.hidden = false;
        notice(null);
        onReady(data);
      } catch (err) {
        sessionStorage.removeItem(KEY);
        form.hidden = false;
        notice(err.status === 401 ? "That token is not valid: try another one." : `Cannot check the token: ${err.message}`);
      }
    }
    check();
  }

  return { ApiError, api, el, clear, notice, sse, sleep, start, token };
})();
