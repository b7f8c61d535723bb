// mblog's service worker, served from /sw.js (scope: the whole site). It shows the
// Web Push messages the server sends (away/services.py push_payload) and opens their
// target on a click: a tab of the site already open goes there, or a new one opens.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { body: event.data.text() }; }
  const url = new URL(data.url || "/inform/", self.location.origin);
  const shown = self.registration.showNotification(data.title || "mblog", {
    body: data.body || "",
    tag: data.tag || "inform",
    // Only a page of this site may be opened from a notification.
    data: { url: url.origin === self.location.origin ? url.href : new URL("/inform/", self.location.origin).href },
  });
  event.waitUntil(shown);
});

async function openTarget(url) {
  const tabs = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const tab of tabs) {
    if (new URL(tab.url).origin === self.location.origin && "navigate" in tab) {
      try { await tab.focus(); } catch (e) { /* focus needs the click's user activation */ }
      return tab.navigate(url);
    }
  }
  return self.clients.openWindow(url);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const opening = openTarget(event.notification.data && event.notification.data.url || "/inform/");
  try { event.waitUntil(opening); } catch (e) { /* an event made by script cannot wait */ }
});
