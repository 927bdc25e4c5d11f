/* wstime client: connects to a wstime node, shows its frames, reconnects with backoff.
 *
 * The pure helpers (normaliseAddress, backoffDelay) are exported on window.wstime so that a
 * browser test can call them directly.
 */
"use strict";

(function () {
  const MAX_RETRIES = 50;
  const BACKOFF_BASE_MS = 500;
  const BACKOFF_CAP_MS = 30000;
  const STABLE_AFTER_MS = 10000; // an open connection this old resets the retry count
  const SILENCE_TICKS = 3.5; // no frame for this many ticks: the connection is dead
  const CLOSE_SESSION_TAKEN_OVER = 4001;
  const CLOSE_SERVICE_RESTART = 1012; // the node is leaving: reconnect after its hint
  const CLOSE_TRY_AGAIN_LATER = 1013; // the node sheds load: reconnect after its hint
  const HINT_CAP_MS = 60000;

  const tickMs = Number(document.body.dataset.tickMs || 1000);

  /* Turn what a person typed into a ws:// or wss:// URL: no "ws://http://...". */
  function normaliseAddress(text, pageLocation) {
    let address = (text || "").trim();
    const secure = pageLocation && pageLocation.protocol === "https:";
    if (!address) {
      address = pageLocation ? pageLocation.host : "";
    }
    address = address.replace(/^(wss?:\/\/)+(?=https?:\/\/|wss?:\/\/)/i, "");
    if (/^https:\/\//i.test(address)) address = "wss://" + address.slice(8);
    else if (/^http:\/\//i.test(address)) address = "ws://" + address.slice(7);
    else if (!/^wss?:\/\//i.test(address)) address = (secure ? "wss://" : "ws://") + address;
    const url = new URL(address);
    url.hash = "";
    return url;
  }

  /* Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)). */
  function backoffDelay(attempt, random) {
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
    return Math.floor((random || Math.random)() * ceiling);
  }

  /* The delay a polite close asks for ("... reconnect in 1234 ms"), or null. */
  function reconnectHint(code, reason) {
    if (code !== CLOSE_SERVICE_RESTART && code !== CLOSE_TRY_AGAIN_LATER) return null;
    const match = /reconnect in (\d+) ms/.exec(reason || "");
    return match ? Math.min(HINT_CAP_MS, Number(match[1])) : null;
  }

  /* The count of the last frame this tab was shown, sent as `last` when it reconnects: the
   * session then resumes past it even if the servers lost it. Kept beside the id. */
  const LAST_SEEN_KEY = "wstime.lastSeen";
  function lastSeen() {
    const value = sessionStorage.getItem(LAST_SEEN_KEY);
    return value === null ? null : Number(value);
  }
  function rememberFrame(text) {
    const match = / for (\d+) seconds$/.exec(text);
    if (match) sessionStorage.setItem(LAST_SEEN_KEY, match[1]);
  }

  function clientId() {
    const key = "wstime.clientId";
    let id = sessionStorage.getItem(key);
    if (!id) {
      id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + "-" + Math.random().toString(36).slice(2));
      sessionStorage.setItem(key, id);
    }
    return id;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function appendMessage(text) {
    const messages = document.getElementById("messages");
    const line = document.createElement("div");
    line.textContent = text;
    messages.appendChild(line);
    while (messages.childElementCount > 500) messages.removeChild(messages.firstChild);
    window.scrollTo(0, document.body.scrollHeight);
  }

  /* One connection, resolved when it ends: {openedAt, code, reason}. */
  function runSession(url) {
    return new Promise((resolve) => {
      const ws = new WebSocket(url);
      let openedAt = null;
      let silenceTimer = null;
      const armSilenceTimer = () => {
        clearTimeout(silenceTimer);
        silenceTimer = setTimeout(() => ws.close(), SILENCE_TICKS * tickMs);
      };
      ws.addEventListener("open", () => {
        openedAt = Date.now();
        appendMessage("connected to server");
        armSilenceTimer();
      });
      ws.addEventListener("message", ({ data }) => {
        console.log(data);
        appendMessage(data);
        rememberFrame(data);
        armSilenceTimer();
      });
      ws.addEventListener("close", (event) => {
        clearTimeout(silenceTimer);
        appendMessage("Connection lost with server.");
        resolve({ openedAt, code: event.code, reason: event.reason });
      });
    });
  }

  async function connectLoop(address) {
    const url = normaliseAddress(address, window.location);
    url.searchParams.set("id", clientId());
    appendMessage(`Connecting to ${url.origin}`);
    let retries = 0;
    while (retries < MAX_RETRIES) {
      appendMessage(`establishing connection... retry #${retries}`);
      const last = lastSeen();
      if (last !== null) url.searchParams.set("last", String(last));
      const ended = await runSession(url.toString());
      if (ended.code === CLOSE_SESSION_TAKEN_OVER) {
        appendMessage("This session continues in another tab or window.");
        return;
      }
      if (ended.openedAt !== null && Date.now() - ended.openedAt >= STABLE_AFTER_MS) {
        retries = 0;
      }
      const hint = reconnectHint(ended.code, ended.reason);
      if (hint !== null) {
        appendMessage(`Server asked to reconnect in ${hint} ms.`);
        await sleep(hint);
      } else {
        await sleep(backoffDelay(retries));
      }
      retries++;
    }
    appendMessage("Reached maximum retries, giving up.");
  }

  function init() {
    const input = document.getElementById("serverAddress");
    const button = document.getElementById("connect");
    input.value = normaliseAddress("", window.location).toString().replace(/\/$/, "");
    let running = false;
    button.onclick = async () => {
      if (running) return;
      running = true;
      document.getElementById("messages").innerHTML = "";
      const instructions = document.getElementById("instructions");
      if (instructions) instructions.remove();
      try {
        await connectLoop(input.value);
      } catch (e) {
        appendMessage(e.message || String(e));
      } finally {
        running = false;
      }
    };
  }

  window.wstime = { normaliseAddress, backoffDelay, reconnectHint };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
