// The post page, live: replies to this post appear in place as they are written.
// inform.js passes on every `feed` frame; a reply to this post names it in its url
// (/posts/<id>/#reply-<n>). The reply's markup comes from the page itself, fetched
// again, so a live reply looks exactly like one rendered by the server.
// Where inserting would move what the reader is looking at (they are writing a reply,
// or have scrolled past the list), a "N new replies" button waits for them instead.
(function () {
  "use strict";
  const list = document.getElementById("replies");
  const more = document.getElementById("new-replies");
  if (!list || !more) return;
  const here = location.pathname;
  const waiting = []; // <li> elements not shown yet
  let fetching = Promise.resolve();

  function readerBusy() {
    const active = document.activeElement;
    if (active && active.matches("textarea, input[type=text]") && active.value) return true;
    return list.getBoundingClientRect().bottom < 0; // scrolled past the list
  }

  function insert(li) {
    if (document.getElementById(li.id)) return;
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    li.classList.add("fresh");
    list.append(li);
  }

  function showWaiting() {
    more.hidden = waiting.length === 0;
    more.textContent = waiting.length === 1 ? "1 new reply — show" : `${waiting.length} new replies — show`;
  }

  more.addEventListener("click", () => {
    const first = waiting[0];
    waiting.splice(0).forEach(insert);
    showWaiting();
    if (first) {
      first.scrollIntoView({ block: "center" });
      first.setAttribute("tabindex", "-1");
      first.focus({ preventScroll: true });
    }
  });

  async function fetchReply(id) {
    const res = await fetch(here, { credentials: "same-origin" });
    if (!res.ok) return;
    const page = new DOMParser().parseFromString(await res.text(), "text/html");
    const li = page.getElementById("reply-" + id);
    if (!li || document.getElementById(li.id) || waiting.some((w) => w.id === li.id)) return;
    const node = document.importNode(li, true);
    if (readerBusy()) { waiting.push(node); showWaiting(); } else insert(node);
  }

  document.addEventListener("mblog:feed", (ev) => {
    const f = ev.detail;
    if (f.event !== "reply" || typeof f.url !== "string") return;
    const m = /^(\/posts\/\d+\/)#reply-(\d+)$/.exec(f.url);
    if (!m || m[1] !== here) return;
    fetching = fetching.then(() => fetchReply(m[2])).catch(() => {}); // one at a time, in order
  });
})();
