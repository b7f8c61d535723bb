// Opt in to Web Push on /away/settings/: register /sw.js, subscribe with the server's
// VAPID public key, hand the subscription to the server (and the reverse to opt out).
(function () {
  "use strict";
  const box = document.getElementById("push-optin");
  if (!box) return;
  const button = box.querySelector("button");
  const note = box.querySelector(".hint");
  const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  box.hidden = false;
  if (!supported) { button.disabled = true; note.textContent = "This browser cannot receive push notifications."; return; }

  function csrf() {
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : (document.querySelector("[name=csrfmiddlewaretoken]") || {}).value;
  }
  function key(b64) {
    const raw = atob((b64 + "=".repeat((4 - b64.length % 4) % 4)).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function post(url, body) {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() }, body: JSON.stringify(body) });
    if (!r.ok) throw new Error("server said " + r.status);
  }
  async function current() {
    const reg = await navigator.serviceWorker.getRegistration("/");
    return reg ? reg.pushManager.getSubscription() : null;
  }
  async function show() {
    const sub = await current();
    button.textContent = sub ? "Turn off push notifications" : "Turn on push notifications";
    button.setAttribute("aria-pressed", sub ? "true" : "false");
    note.textContent = Notification.permission === "denied"
      ? "Notifications are blocked for this site in your browser's settings."
      : sub ? "On: this browser gets a notification when no mblog tab is in view." : "";
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const sub = await current();
      if (sub) {
        await post(box.dataset.unsubscribe, { endpoint: sub.endpoint });
        await sub.unsubscribe();
      } else if ((await Notification.requestPermission()) === "granted") {
        const reg = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
        await navigator.serviceWorker.ready;
        const fresh = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key(box.dataset.key) });
        await post(box.dataset.subscribe, fresh.toJSON());
      }
    } catch (e) {
      note.textContent = "Could not change push notifications: " + e.message;
      button.disabled = false;
      return;
    }
    button.disabled = false;
    show();
  });
  show();
})();
