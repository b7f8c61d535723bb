// A chat room over /ws/chat/<room>/. The page already shows the newest messages and
// works without JavaScript (a plain form post); this makes it live.
// - Every message is shown with textContent, never as HTML.
// - Messages are kept in id order and shown once (dedupe by id).
// - Reconnects with exponential backoff plus jitter, asking for what it missed with
//   ?after=<the last cursor the server gave>; it answers with every message after it.
// - Scrolling to the top loads older messages over HTTP.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const room = root.dataset.room;
  const log = document.getElementById("chat-log");
  const scroller = document.getElementById("chat-scroll");
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const presence = document.getElementById("chat-presence");
  const errorBox = document.getElementById("chat-error");
  const status = document.getElementById("chat-status");
  const seen = new Set();
  let lastId = Number(root.dataset.last || 0);
  let socket = null;
  let attempt = 0;
  let loadingOlder = false;
  let retryTimer = null;
  const me = root.dataset.user;
  const offlineBanner = document.getElementById("chat-offline");

  log.querySelectorAll(".chat-msg").forEach((li) => seen.add(Number(li.dataset.id)));
  const olderLink = document.getElementById("chat-older");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; // always text, never HTML
    return e;
  }

  function setStatus(text) {
    if (status) { status.textContent = text; status.dataset.state = text; }
  }

  function oldestId() {
    const first = log.querySelector(".chat-msg");
    return first ? Number(first.dataset.id) : 0;
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
  }

  // The server sends ISO times; every message, from the page or live, is shown in the
  // reader's locale and time zone by this one function (the date too when not today).
  const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dateTime = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });
  function showTime(node) {
    const when = new Date(node.dateTime);
    if (Number.isNaN(when.getTime())) return;
    const today = when.toDateString() === new Date().toDateString();
    node.textContent = (today ? timeOnly : dateTime).format(when);
    node.title = fullDate.format(when);
  }

  function render(m) {
    const li = el("li", "chat-msg");
    li.dataset.id = String(m.id);
    const time = el("time");
    time.dateTime = m.created;
    showTime(time);
    li.append(el("span", "chat-user", m.user), " ", time, " ", el("span", "chat-text", m.text));
    if (m.user === root.dataset.user) li.classList.add("mine");
    return li;
  }

  // Insert in id order, so every reader sees the same order whatever the arrival order.
  function add(m) {
    if (m.user === me) confirmPending(m.text, m.id);
    if (seen.has(m.id)) return false;
    seen.add(m.id);
    const stick = nearBottom() || m.user === root.dataset.user;
    const li = render(m);
    const items = log.children;
    let i = items.length;
    while (i > 0 && Number(items[i - 1].dataset.id) > m.id) i -= 1;
    log.insertBefore(li, items[i] || null);
    const firstPending = log.querySelector(".chat-msg.pending");
    if (firstPending && li.compareDocumentPosition(firstPending) & Node.DOCUMENT_POSITION_PRECEDING) {
      log.insertBefore(li, firstPending); // what waits to be sent stays last
    }
    if (stick) scroller.scrollTop = scroller.scrollHeight;
    return true;
  }

  // --- messages written while offline: shown at once, sent when the socket is back ------

  const QUEUE = "chat.queue." + room;
  const pending = []; // {text, li, sent, after: the newest id when it was written}

  function savePending() {
    try { sessionStorage.setItem(QUEUE, JSON.stringify(pending.map((p) => p.text))); } catch (e) { /* full */ }
  }

  function pendingState(p, text) {
    p.li.querySelector(".chat-state").textContent = text;
  }

  function queueMessage(text) {
    const li = render({ id: 0, user: me, text, created: new Date().toISOString() });
    li.classList.add("pending");
    li.removeAttribute("data-id");
    li.append(" ", el("span", "chat-state"));
    log.append(li);
    const p = { text, li, sent: false, after: lastId };
    pending.push(p);
    pendingState(p, "waiting to send");
    savePending();
    scroller.scrollTop = scroller.scrollHeight;
    flush();
  }

  function flush() {
    if (!socket || socket.readyState !== WebSocket.OPEN || !socket.joined) return;
    pending.filter((p) => !p.sent).forEach((p) => {
      socket.send(JSON.stringify({ type: "message", text: p.text }));
      p.sent = true;
      pendingState(p, "sending…");
    });
  }

  // The server echoes every message to its sender too: that echo is the receipt.
  function confirmPending(text, id) {
    const i = pending.findIndex((p) => p.text === text && id > p.after);
    if (i < 0) return;
    pending[i].li.remove();
    pending.splice(i, 1);
    savePending();
  }

  function showOffline(offline) {
    if (offlineBanner) offlineBanner.hidden = !offline;
    presence.classList.toggle("stale", offline);
    presence.setAttribute("aria-description", offline ? "last known, while offline" : "");
    // Sent but not echoed: the server may not have it. The history sent on reconnect
    // confirms what it does have; the rest goes again.
    pending.forEach((p) => { if (offline) { p.sent = false; pendingState(p, "waiting to send"); } });
  }

  // Back from sleep or a dropped network: don't wait for the backoff timer.
  function wake() {
    if (root.dataset.paged === "1" || socket) return;
    clearTimeout(retryTimer);
    attempt = 0;
    connect();
  }
  window.addEventListener("online", wake);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") wake(); });
  if (offlineBanner) {
    const retry = offlineBanner.querySelector("button");
    if (retry) retry.addEventListener("click", wake);
  }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(() => { errorBox.hidden = true; }, 5000);
  }

  // Error frames in words a person uses (the server's detail is for developers).
  function friendly(f) {
    if (f.code === "rate_limited") {
      const wait = /wait (.+)$/.exec(f.detail || "");
      return wait ? `You're sending messages faster than the room allows. Please wait ${wait[1]}.`
                  : "You're sending messages faster than the room allows. Please wait a moment.";
    }
    if (f.code === "too_large") return "That message is too long.";
    return f.detail || "Something went wrong; please try again.";
  }

  // The server refused the oldest message in flight: say so beside it, offer to retry.
  function failPending() {
    const p = pending.find((q) => q.sent);
    if (!p) return;
    pending.splice(pending.indexOf(p), 1);
    savePending();
    p.li.classList.add("failed");
    pendingState(p, "not sent");
    const retry = el("button", "link chat-retry", "Retry");
    retry.type = "button";
    retry.addEventListener("click", () => { p.li.remove(); queueMessage(p.text); });
    p.li.append(" ", retry);
  }

  function handle(f) {
    switch (f.type) {
      case "history":
        if (f.reset) { log.querySelectorAll(".chat-msg:not(.pending)").forEach((li) => li.remove()); seen.clear(); }
        f.messages.forEach(add);
        if (typeof f.cursor === "number") lastId = f.cursor;
        // Older messages than these exist: scrolling up loads them over HTTP.
        if (f.more && olderLink) olderLink.hidden = false;
        scroller.scrollTop = scroller.scrollHeight;
        if (socket) socket.joined = true;
        flush();
        break;
      // The resume point moves only with the server's word: a live message may have
      // overtaken one that was lost on the way.
      case "synced": lastId = f.cursor; break;
      case "message": add(f); break;
      case "message_removed": {
        const li = log.querySelector(`.chat-msg[data-id="${Number(f.id)}"]`);
        if (li) li.remove();
        break;
      }
      case "presence":
        presence.replaceChildren(...f.users.map((u) => el("li", u === me ? "me" : "", u)));
        break;
      case "error": showError(friendly(f)); failPending(); break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const url = `${scheme}${location.host}/ws/chat/${encodeURIComponent(room)}/?after=${lastId}`;
    socket = new WebSocket(url);
    socket.onopen = () => { attempt = 0; setStatus("live"); showOffline(false); };
    socket.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      handle(frame);
    };
    socket.onclose = (ev) => {
      socket = null;
      setStatus("offline");
      showOffline(true);
      if (ev.code === 4401 || ev.code === 4001) { showError("Sign in to chat."); return; }
      if (ev.code === 4404) { showError("No such room."); return; }
      // Exponential backoff with full jitter: up to 0.5 s, 1 s, 2 s … capped at 30 s.
      const ceiling = Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      retryTimer = setTimeout(connect, Math.random() * ceiling + 250);
    };
  }

  // Live, every message goes through the queue: a dropped connection never turns Enter
  // into a failed page load. Paging through old messages, the plain form post stays.
  form.addEventListener("submit", (ev) => {
    if (root.dataset.paged === "1") return;
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    queueMessage(text);
    input.value = "";
    input.focus();
  });

  async function loadOlder() {
    if (loadingOlder || !olderLink || olderLink.hidden) return;
    loadingOlder = true;
    try {
      const before = oldestId();
      const res = await fetch(`${root.dataset.messagesUrl}?before=${before}`, { credentials: "same-origin" });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const page = await res.json();
      const height = scroller.scrollHeight;
      const top = scroller.scrollTop;
      page.messages.slice().reverse().forEach((m) => { // newest first, each above the last
        if (seen.has(m.id)) return;
        seen.add(m.id);
        log.insertBefore(render(m), log.firstChild);
      });
      // Keep what the reader was looking at in place.
      scroller.scrollTop = top + (scroller.scrollHeight - height);
      if (!page.more) olderLink.hidden = true;
    } catch (e) {
      showError("Could not load older messages.");
    } finally {
      loadingOlder = false;
    }
  }

  if (olderLink) {
    olderLink.addEventListener("click", (ev) => { ev.preventDefault(); loadOlder(); });
    scroller.addEventListener("scroll", () => { if (scroller.scrollTop < 40) loadOlder(); });
  }

  log.querySelectorAll(".chat-msg time").forEach(showTime);
  try { JSON.parse(sessionStorage.getItem(QUEUE) || "[]").forEach(queueMessage); } catch (e) { /* none */ }
  window.mblogChat = { seen, get lastId() { return lastId; }, get socket() { return socket; }, loadOlder };
  scroller.scrollTop = scroller.scrollHeight;
  if (root.dataset.paged !== "1") connect();
})();
