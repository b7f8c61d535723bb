// The live layer over pages that already work without JavaScript.
// One socket per tab to /ws/inform/: badge, toasts, notification list, live feed.
// Reconnects with exponential backoff plus jitter and asks for what it missed: `sync`
// from the last resume point the server gave (`synced`, or the page's own); ids already
// shown are ignored. The highest id seen is no resume point: a live push can overtake
// one that was lost on the way.
(function () {
  "use strict";
  const signedIn = document.body.dataset.signedIn === "1";
  const badge = document.getElementById("inform-badge");
  const status = document.getElementById("live-status");
  const toasts = document.getElementById("toasts");
  const feed = document.getElementById("feed");
  const list = document.getElementById("inform-list");
  const STORE = "inform.lastId";
  const MAX_TOASTS = 4;

  // The page was rendered with everything up to data-inform-last; start there.
  let cursor = Math.max(Number(sessionStorage.getItem(STORE) || 0), Number(document.body.dataset.informLast || 0));
  // Two counters, always set from the server's absolute values: `unread` (not opened or
  // marked read: the badge and the list show those) and `unseen` (unread and newer than
  // the last time the menu or the list was opened: the "new" mark and the title).
  const fresh = document.getElementById("inform-new");
  let unread = badge && badge.dataset.unread ? Number(badge.dataset.unread) : 0;
  let unseen = fresh && fresh.textContent.trim() ? Number(fresh.textContent) : 0;
  // Counters come with their version, [the person's counters version, the newest id],
  // compared as pairs: pushes of two senders can cross, and counters older than the ones
  // shown are ignored. A site update comes without counters: it counts one more unless
  // the counters shown include it already (its id is at or below the version's newest id).
  let version = badge && badge.dataset.version ? badge.dataset.version.split(",").map(Number) : null;
  const countedAbove = new Set(); // site updates counted on top of the versioned counters
  const seen = new Set();
  let socket = null;
  let opened = false; // a socket has opened before: later opens backfill the feed
  let attempt = 0;
  let retryTimer = null;

  function setCounters(u, s, v) {
    if (Array.isArray(v)) {
      if (version && (v[0] < version[0] || (v[0] === version[0] && v[1] < version[1]))) return; // older
      version = v;
      countedAbove.forEach((id) => { if (id <= v[1]) countedAbove.delete(id); });
      u += countedAbove.size;
      s += countedAbove.size;
    }
    unread = Math.max(0, u);
    unseen = Math.max(0, Math.min(unread, s === undefined ? unseen : s));
    if (!badge) return;
    badge.dataset.unread = String(unread);
    badge.textContent = unread ? String(unread) : "";
    badge.hidden = unread === 0;
    if (fresh) {
      fresh.textContent = unseen ? String(unseen) : "";
      fresh.hidden = unseen === 0;
    }
    showCountInTitle();
  }

  function setStatus(text) {
    if (status) { status.textContent = text; status.dataset.state = text; status.hidden = false; }
    showOfflineBanner(text !== "live");
  }

  // A clear banner once the live connection has been gone a moment (a quick reconnect
  // shows nothing); chat pages have their own. "Retry now" reconnects at once.
  const banner = document.getElementById("offline-banner");
  let bannerTimer = null;
  function showOfflineBanner(offline) {
    if (!banner || document.getElementById("chat-offline")) return;
    if (!offline) { clearTimeout(bannerTimer); bannerTimer = null; banner.hidden = true; return; }
    // Failed retries come faster than that moment: they must not keep postponing it.
    if (bannerTimer === null && banner.hidden) bannerTimer = setTimeout(() => { bannerTimer = null; banner.hidden = false; }, 1500);
  }
  if (banner) banner.querySelector("button").addEventListener("click", () => wake());

  function setCursor(c) {
    if (c > cursor) { cursor = c; sessionStorage.setItem(STORE, String(c)); }
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; // always text, never HTML
    return e;
  }

  // A link target only if a click on it cannot run script: a path on this site or an
  // http(s) URL (the server refuses others, but a row may have been stored around it).
  function safeHref(url) {
    if (typeof url !== "string" || !url || url.length > 500 || /[\x00-\x20\x7f\\]/.test(url)) return null;
    if (url[0] === "/") return url[1] === "/" ? null : url;
    return /^https?:\/\/[^/]/i.test(url) ? url : null;
  }

  function toast(text, url, f) {
    if (!toasts) return;
    const t = el("div", "toast");
    if (f) t.append(avatar(f.actor));
    const a = el("a", "toast-link", text);
    a.href = safeHref(url) || "/inform/";
    const close = el("button", "toast-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => t.remove());
    t.append(a, close);
    toasts.prepend(t);
    while (toasts.children.length > MAX_TOASTS) toasts.lastChild.remove();
    // Stays while the pointer or the keyboard is on it.
    let timer = setTimeout(() => t.remove(), 8000);
    const hold = () => clearTimeout(timer);
    const release = () => { clearTimeout(timer); timer = setTimeout(() => t.remove(), 4000); };
    t.addEventListener("mouseenter", hold);
    t.addEventListener("focusin", hold);
    t.addEventListener("mouseleave", release);
    t.addEventListener("focusout", release);
  }

  // The same initial-in-a-circle the pages render (templatetags/mblog_ui.py: avatar_hue).
  function avatar(name) {
    if (!name) return el("span", "avatar hue-site", "m");
    const hue = Array.from(name).reduce((sum, c) => sum + c.codePointAt(0), 0) % 8;
    const a = el("span", "avatar hue-" + hue, Array.from(name)[0].toUpperCase());
    a.setAttribute("aria-hidden", "true");
    return a;
  }

  // A grouped entry ("alice, bob and 8 more replied…") arrives again, with a new id, each
  // time it changes: it replaces the unread entry of the same group (the server only
  // ever groups into an unread one).
  function dropOlderOfGroup(container, f) {
    if (!container || !f.group) return;
    container.querySelectorAll(".inform-item.unread[data-group]").forEach((li) => {
      if (li.dataset.group === f.group && Number(li.dataset.id) < f.id) li.remove();
    });
  }

  function addToList(f) {
    if (!list || list.querySelector(`.inform-item[data-id="${f.id}"]`)) return;
    dropOlderOfGroup(list, f);
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const li = el("li", "inform-item unread");
    li.dataset.id = f.id;
    if (f.group) li.dataset.group = f.group;
    li.append(avatar(f.actor), " ", el("span", "verb verb-" + f.verb, f.verb.replace("_", " ")), " ");
    const a = el("a", "", f.text);
    a.href = openUrl(f);
    li.append(a, " ", el("time", "", "just now"));
    const form = markReadForm(f.id);
    if (form) li.append(" ", form);
    li.append(" ", stopLink(f));
    // Newest first: insert above the first item with a smaller id.
    const after = Array.from(list.children).find((c) => Number(c.dataset.id) < f.id);
    list.insertBefore(li, after || null);
  }

  function addToFeed(f) {
    if (!feed || (f.key && feed.querySelector(`.feed-item[data-key="${CSS.escape(f.key)}"]`))) return;
    const empty = feed.querySelector(".empty");
    if (empty) empty.remove();
    const li = el("li", "feed-item feed-" + f.event + " fresh");
    if (f.key) li.dataset.key = f.key;
    li.append(el("span", "event", f.event.replace("_", " ")), " ");
    if (f.actor) {
      const who = el("a", "actor", f.actor);
      who.href = "/u/" + encodeURIComponent(f.actor) + "/";
      li.append(who, " ");
    }
    const a = el("a", "text", f.text);
    a.href = safeHref(f.url) || "#";
    const when = el("time", "", "just now");
    if (f.created) when.dateTime = f.created;
    li.append(a, " ", when);
    // Newest first: above the first item that is older (a backfilled item may be).
    const created = Date.parse(f.created || "") || Date.now();
    const older = Array.from(feed.querySelectorAll(".feed-item")).find((item) => {
      const t = item.querySelector("time[datetime]");
      return t && Date.parse(t.dateTime) < created;
    });
    feed.insertBefore(li, older || null);
  }

  // After a reconnect the feed may have missed items: fetch the newest and add what is
  // not shown (items carry a key, so nothing shows twice).
  function backfillFeed() {
    if (!feed) return;
    fetch("/api/feed/", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : { feed: [] }))
      .then((body) => body.feed.slice().reverse().forEach(addToFeed))
      .catch(() => {});
  }

  function onInform(f) {
    if (seen.has(f.id)) return;
    seen.add(f.id);
    addToList(f);
    if (f.verb === "site_update" && feed) {
      addToFeed({ key: "site_update:" + f.id, event: "site_update", actor: f.actor, text: f.text, url: f.url,
                  created: f.created });
    }
    if (typeof f.unread === "number") setCounters(f.unread, f.unseen, f.version);
    else if (!(version && f.id <= version[1]) && !countedAbove.has(f.id)) { // a site update
      countedAbove.add(f.id);
      setCounters(unread + 1, unseen + 1);
    }
    addToMenu(f);
    toast(f.text, openUrl(f), f);
    desktopNotify(f);
  }

  // --- read state of the items on this page (list, menu) -----------------------------

  // Every notification link opens through the server, which marks it read for all tabs.
  function openUrl(f) {
    return "/inform/" + Number(f.id) + "/open/";
  }

  function markItemRead(li) {
    li.classList.remove("unread");
    li.classList.add("read");
    const f = li.querySelector(".mark-read-form, .menu-mark-read");
    if (f) f.remove();
  }

  // The same plain form the server renders beside an unread item (it posts without a socket).
  function markReadForm(id) {
    const token = document.querySelector("#mark-all-form [name=csrfmiddlewaretoken]");
    if (!token) return null;
    const form = el("form", "inline mark-read-form");
    form.method = "post";
    form.action = "/inform/read/";
    const field = (name, value) => { const i = el("input"); i.type = "hidden"; i.name = name; i.value = value; return i; };
    const button = el("button", "link mark-read", "Mark read");
    button.type = "submit";
    form.append(field("csrfmiddlewaretoken", token.value), field("id", String(id)),
                field("next", location.pathname + location.search), button);
    return form;
  }

  // An `unread` frame says something was read, not what: ask which shown items are.
  let readStateBusy = false;
  let readStateAgain = false;
  async function refreshReadState() {
    const shown = Array.from(document.querySelectorAll(".inform-item.unread[data-id]"));
    if (!shown.length) return;
    if (unread === 0) { shown.forEach(markItemRead); return; }
    if (readStateBusy) { readStateAgain = true; return; }
    readStateBusy = true;
    try {
      const ids = Array.from(new Set(shown.map((li) => li.dataset.id))).slice(0, 200);
      const res = await fetch("/inform/api/read-state/?ids=" + ids.join(","), { credentials: "same-origin" });
      if (res.ok) {
        const read = new Set((await res.json()).read.map(String));
        shown.forEach((li) => { if (read.has(li.dataset.id)) markItemRead(li); });
      }
    } catch (e) { /* the next unread frame tries again */ }
    readStateBusy = false;
    if (readStateAgain) { readStateAgain = false; refreshReadState(); }
  }

  // --- the tab title and desktop notifications ----------------------------------------

  const baseTitle = document.title.replace(/^\(\d+\) /, ""); // the server renders the count too
  function showCountInTitle() {
    document.title = signedIn && unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
  }

  // Desktop notifications: only after the person turns them on here, and only when no
  // tab of the site is visible (visible tabs show a toast). Each visible tab keeps a
  // fresh stamp in localStorage; of the hidden tabs that get the frame, the one that
  // takes its lock first shows it, once.
  const DESKTOP = "inform.desktop";
  const tabId = Math.random().toString(36).slice(2);
  const canNotify = "Notification" in window;

  function stampVisibility() {
    try {
      if (document.visibilityState === "visible") localStorage.setItem("inform.visible." + tabId, String(Date.now()));
      else localStorage.removeItem("inform.visible." + tabId);
    } catch (e) { /* storage disabled: every tab counts as alone */ }
  }

  function someTabVisible() {
    if (document.visibilityState === "visible") return true;
    const now = Date.now();
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (key && key.startsWith("inform.visible.") && now - Number(localStorage.getItem(key)) < 45000) return true;
    }
    return false;
  }

  function desktopOn() {
    return canNotify && Notification.permission === "granted" && localStorage.getItem(DESKTOP) === "1";
  }

  function desktopNotify(f) {
    if (!signedIn || !desktopOn() || someTabVisible()) return;
    const show = () => {
      if (Number(localStorage.getItem("inform.desktop.last") || 0) >= f.id) return;
      localStorage.setItem("inform.desktop.last", String(f.id));
      const n = new Notification("mblog", { body: f.text, tag: "inform-" + f.id });
      n.onclick = () => { window.focus(); location.href = openUrl(f); n.close(); };
    };
    // localStorage reaches other tabs only a moment later, so the tab that shows one also
    // holds a lock named after it for a minute: the other tabs, which get the same frame
    // within that minute, find it taken.
    if (navigator.locks) {
      navigator.locks.request("inform.desktop." + f.id, { ifAvailable: true }, (lock) => {
        if (!lock) return null;
        show();
        return new Promise((release) => setTimeout(release, 60000));
      });
    } else show();
  }

  function showDesktopChoice() {
    const button = document.getElementById("desktop-optin");
    if (!button) return;
    const note = document.getElementById("desktop-note");
    button.hidden = !canNotify;
    if (!canNotify) return;
    const denied = Notification.permission === "denied";
    button.textContent = desktopOn() ? "Turn off desktop notifications" : "Turn on desktop notifications";
    button.setAttribute("aria-pressed", desktopOn() ? "true" : "false");
    button.disabled = denied;
    if (note) {
      note.hidden = !denied && !desktopOn();
      note.textContent = denied
        ? "Desktop notifications are blocked for this site in your browser's settings."
        : "On: you get a desktop notification when no mblog tab is in view.";
    }
  }

  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest("#desktop-optin");
    if (!button || !canNotify) return;
    if (desktopOn()) localStorage.removeItem(DESKTOP);
    else if ((await Notification.requestPermission()) === "granted") localStorage.setItem(DESKTOP, "1");
    showDesktopChoice();
  });

  stampVisibility();
  document.addEventListener("visibilitychange", stampVisibility);
  window.addEventListener("pagehide", () => { try { localStorage.removeItem("inform.visible." + tabId); } catch (e) { /* gone */ } });
  setInterval(stampVisibility, 20000);
  showDesktopChoice();
  showCountInTitle();

  // --- the header menu: latest items, unread first, without leaving the page -----------

  const menuButton = document.getElementById("inform-menu-button");
  const menu = document.getElementById("inform-menu");
  const menuItems = document.getElementById("inform-menu-items");

  function menuEntry(f, read) {
    const li = el("li", "inform-item menu-item " + (read ? "read" : "unread"));
    li.dataset.id = f.id;
    if (f.group) li.dataset.group = f.group;
    const a = el("a", "menu-open");
    a.href = openUrl(f);
    a.append(el("span", "verb verb-" + f.verb, f.verb.replace("_", " ")), " ", el("span", "menu-text", f.text));
    li.append(avatar(f.actor), a);
    if (!read) {
      const b = el("button", "link menu-mark-read", "Mark read");
      b.type = "button";
      b.setAttribute("aria-label", "Mark read: " + f.text);
      li.append(b);
    }
    li.append(stopLink(f));
    return li;
  }

  function addToMenu(f) {
    if (!menu || menu.hidden || menuItems.querySelector(`[data-id="${f.id}"]`)) return;
    dropOlderOfGroup(menuItems, f);
    const empty = menuItems.querySelector(".empty");
    if (empty) empty.remove();
    menuItems.prepend(menuEntry(f, false));
  }

  // "Stop notifying me about this": a page of plain forms (mute the post, the person, the kind).
  function stopLink(f) {
    const a = el("a", "stop-link", "Stop these");
    a.href = "/inform/" + Number(f.id) + "/stop/";
    a.title = "Stop notifying me about this";
    a.setAttribute("aria-label", "Stop notifying me about this: " + f.text);
    return a;
  }

  // Opening the menu makes what it shows seen (up to the server's cursor), in every tab.
  async function markSeen(upto) {
    try {
      const res = await fetch("/inform/api/seen/", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify({ upto: upto }),
      });
      if (res.ok) { const c = await res.json(); setCounters(c.unread, c.unseen, c.version); }
    } catch (e) { /* the next counters frame sets the badge */ }
  }

  async function fillMenu() {
    menuItems.setAttribute("aria-busy", "true");
    try {
      const res = await fetch("/inform/api/menu/", { credentials: "same-origin" });
      if (!res.ok) throw new Error("HTTP " + res.status);
      const data = await res.json();
      menuItems.replaceChildren(...data.items.map((f) => menuEntry(f, f.read)));
      if (!data.items.length) menuItems.append(el("li", "empty", "No notifications yet."));
      setCounters(data.unread, data.unseen, data.version);
      if (data.unseen) markSeen(data.cursor);
    } catch (e) {
      menuItems.replaceChildren(el("li", "empty", "Could not load notifications."));
    }
    menuItems.removeAttribute("aria-busy");
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // Over the socket when it is open, else the JSON API: either way every tab hears of it.
  async function markRead(body) {
    if (send(body.all ? { type: "read_all" } : { type: "read", ids: body.ids })) return;
    const res = await fetch("/inform/api/read/", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body),
    });
    if (res.ok) { const c = await res.json(); setCounters(c.unread, c.unseen, c.version); }
  }

  async function openMenu() {
    menu.hidden = false;
    menuButton.setAttribute("aria-expanded", "true");
    await fillMenu();
    const first = menu.querySelector(".menu-open") || document.getElementById("inform-menu-all");
    if (!menu.hidden && first) first.focus();
  }

  function closeMenu(focusButton) {
    if (menu.hidden) return;
    menu.hidden = true;
    menuButton.setAttribute("aria-expanded", "false");
    if (focusButton) menuButton.focus();
  }

  if (menuButton && menu) {
    menuButton.setAttribute("role", "button");
    menuButton.addEventListener("click", (ev) => {
      ev.preventDefault();
      if (menu.hidden) openMenu(); else closeMenu(false);
    });
    menuButton.addEventListener("keydown", (ev) => {
      if (ev.key === " ") { ev.preventDefault(); menuButton.click(); }
      if (ev.key === "ArrowDown" && menu.hidden) { ev.preventDefault(); openMenu(); }
    });
    menu.addEventListener("keydown", (ev) => {
      if (ev.key === "Escape") { ev.preventDefault(); closeMenu(true); return; }
      if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
      ev.preventDefault();
      const links = Array.from(menu.querySelectorAll(".menu-open, #inform-menu-all"));
      const i = links.indexOf(document.activeElement.closest("a"));
      const next = ev.key === "ArrowDown" ? Math.min(links.length - 1, i + 1) : Math.max(0, i - 1);
      if (links[next]) links[next].focus();
    });
    menu.addEventListener("click", (ev) => {
      const one = ev.target.closest(".menu-mark-read");
      if (one) {
        const li = one.closest(".menu-item");
        const link = li.querySelector(".menu-open");
        markItemRead(li);
        link.focus(); // the button is gone: keep the keyboard user in place
        markRead({ ids: [Number(li.dataset.id)] });
      } else if (ev.target.closest("#inform-menu-read-all")) {
        document.querySelectorAll(".inform-item.unread").forEach(markItemRead);
        markRead({ all: true });
      }
    });
    document.addEventListener("click", (ev) => {
      // (a Mark read button has left the document by now: that click was inside)
      if (!menu.hidden && ev.target.isConnected && !ev.target.closest(".inform-menu-wrap")) closeMenu(false);
    });
    document.addEventListener("focusin", (ev) => {
      if (!menu.hidden && !ev.target.closest(".inform-menu-wrap")) closeMenu(false);
    });
  }

  function handle(frame) {
    switch (frame.type) {
      case "inform": onInform(frame); break;
      case "unread": setCounters(frame.unread, frame.unseen, frame.version); refreshReadState(); break;
      case "synced": setCursor(frame.cursor); break;
      case "reset": sessionStorage.removeItem(STORE); location.reload(); break;
      case "feed":
        addToFeed(frame);
        if (frame.event === "site_update") toast(frame.text, frame.url);
        document.dispatchEvent(new CustomEvent("mblog:feed", { detail: frame })); // the post page listens
        break;
      case "error": console.warn("inform:", frame.code, frame.detail); break;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/ws/inform/");
    socket.onopen = () => {
      attempt = 0;
      setStatus("live");
      if (opened) backfillFeed();
      opened = true;
      // A first page load starts from what the server rendered; later opens catch up.
      if (signedIn) socket.send(JSON.stringify({ type: "sync", after: cursor }));
      if (signedIn) reportPresence(true);
    };
    socket.onmessage = (ev) => {
      let frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      handle(frame);
    };
    socket.onclose = (ev) => {
      setStatus("offline");
      socket = null;
      if (ev.code === 4001) { location.reload(); return; } // signed out: show the page as it is now
      if (ev.code === 4401 || ev.code === 4403) return;
      if (ev.code === 4503) { // the server sheds load: come back after the time it names, spread out
        const seconds = parseFloat((/retry after ([\d.]+)/.exec(ev.reason) || [])[1]) || 5;
        attempt += 1;
        retryTimer = setTimeout(connect, (0.5 + Math.random()) * seconds * 1000);
        return;
      }
      // Exponential backoff with full jitter: 0.5 s, 1 s, 2 s … capped at 30 s.
      const ceiling = Math.min(30000, 500 * 2 ** attempt);
      attempt += 1;
      retryTimer = setTimeout(connect, Math.random() * ceiling + 250);
    };
  }

  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(frame)); return true; }
    return false;
  }

  // Presence for email and push (docs/away.md): "looking" = this tab is visible and had
  // input within IDLE_MS. Sent on every open and when it changes, settled for a moment
  // first, so tab flicking and mouse moves cost no frames.
  const IDLE_MS = 5 * 60 * 1000;
  let lastInput = Date.now();
  let reported = null;
  let presenceTimer = null;
  function looking() { return document.visibilityState === "visible" && Date.now() - lastInput < IDLE_MS; }
  function reportPresence(force) {
    clearTimeout(presenceTimer);
    presenceTimer = setTimeout(() => {
      const now = looking();
      if ((force || now !== reported) && send({ type: "presence", visible: now })) reported = now;
    }, force ? 0 : 1000);
  }
  function onInput() {
    const wasIdle = Date.now() - lastInput >= IDLE_MS;
    lastInput = Date.now();
    if (wasIdle) reportPresence(false);
  }
  if (signedIn) {
    ["pointerdown", "pointermove", "keydown", "scroll", "touchstart"].forEach((t) =>
      window.addEventListener(t, onInput, { passive: true, capture: true }));
    document.addEventListener("visibilitychange", () => reportPresence(false));
    setInterval(() => { if (reported && !looking()) reportPresence(false); }, 30000);
  }

  // Mark-read buttons work as plain forms; with a socket we do it live instead.
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (form.classList.contains("mark-read-form")) {
      const id = Number(form.querySelector("[name=id]").value);
      if (send({ type: "read", ids: [id] })) {
        ev.preventDefault();
        const li = form.closest(".inform-item");
        if (li) { li.classList.remove("unread"); li.classList.add("read"); }
        form.remove();
      }
    } else if (form.id === "mark-all-form") {
      if (send({ type: "read_all" })) {
        ev.preventDefault();
        document.querySelectorAll(".inform-item.unread").forEach((li) => {
          li.classList.remove("unread"); li.classList.add("read");
          const f = li.querySelector(".mark-read-form");
          if (f) f.remove();
        });
      }
    }
  });

  // Back from a sleeping laptop or a dropped network: don't wait for the backoff timer.
  function wake() {
    if (!socket) { clearTimeout(retryTimer); attempt = 0; connect(); }
    else if (signedIn) send({ type: "sync", after: cursor });
  }
  window.addEventListener("online", wake);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") wake(); });

  // A server that crashed between commit and push never sends that push: an occasional
  // sync while the page is visible makes such a notification arrive anyway.
  setInterval(() => { if (document.visibilityState === "visible" && signedIn) send({ type: "sync", after: cursor }); },
              120000 + Math.random() * 60000);

  if (list) list.querySelectorAll(".inform-item").forEach((li) => seen.add(Number(li.dataset.id)));
  window.mblogInform = { send: send, get presence() { return reported; }, get cursor() { return cursor; }, get unread() { return unread; }, get unseen() { return unseen; }, get socket() { return socket; } };
  connect();
})();
