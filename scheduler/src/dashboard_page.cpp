// The scheduler's dashboard: one self-contained page (no external assets, no build step) that
// fetches /api/cluster every second and draws it. Text from the cluster (worker, lock and queue
// names) only ever goes into the page as text nodes, never as HTML. A ?token=... in the page's
// URL is passed on to its fetches (as an Authorization header), for endpoints beyond loopback.
#include "detail/cluster_snapshot.hpp"

namespace ember::detail {
namespace {

constexpr std::string_view page = R"ember_page(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ember cluster</title>
<link rel="icon" href="data:,">
<style>
  :root { --fg: #1d2330; --muted: #6b7280; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff;
          --accent: #d9480f; --ok: #2b8a3e; --bad: #c92a2a; --bar: #4c6ef5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 16px; padding: 12px 20px;
           background: #1d2330; color: #fff; }
  header h1 { margin: 0; font-size: 18px; }
  header h1 span { color: #ff8a4c; }
  header .where { color: #c5cad3; }
  header .status { margin-left: auto; font-size: 12px; color: #c5cad3; }
  header .status.bad { color: #ffa8a8; }
  main { padding: 16px 20px; display: grid; gap: 16px;
         grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
            padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin: 0 0 8px; font-size: 15px; }
  .counters { display: flex; flex-wrap: wrap; gap: 8px; }
  .counter { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; min-width: 110px; }
  .counter b { display: block; font-size: 18px; }
  .counter small { color: var(--muted); }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
           vertical-align: top; }
  th { font-size: 12px; color: var(--muted); font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .empty { color: var(--muted); font-style: italic; }
  .badge { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px;
           background: #e7f5ff; color: #1864ab; }
  .badge.cuda { background: #ebfbee; color: #2b8a3e; }
  .badge.dead, .badge.failed, .badge.cancelled { background: #fff5f5; color: var(--bad); }
  .badge.alive, .badge.done { background: #ebfbee; color: var(--ok); }
  .badge.running { background: #fff4e6; color: var(--accent); }
  .tier { display: grid; grid-template-columns: 82px 1fr 150px; gap: 6px; align-items: center;
          font-size: 12px; }
  .bar { height: 10px; background: #edf0f5; border-radius: 5px; overflow: hidden; }
  .bar > div { height: 100%; background: var(--bar); }
  .bar.progress > div { background: var(--accent); }
  .bar.progress.done > div { background: var(--ok); }
  .stage { display: grid; grid-template-columns: 180px 1fr 110px; gap: 8px; align-items: center;
           font-size: 12px; margin: 3px 0; }
  .job { border-top: 1px solid var(--line); padding: 8px 0; }
  .job:first-child { border-top: 0; }
  .job .title { display: flex; gap: 10px; align-items: baseline; margin-bottom: 4px; }
  .job .msg { color: var(--bad); font-size: 12px; }
  td.cell { text-align: center; font-variant-numeric: tabular-nums; }
  td.cell small { display: block; color: var(--muted); }
  .muted { color: var(--muted); }
</style>
</head>
<body data-loaded="0" data-updates="0">
<header>
  <h1><span>ember</span> cluster</h1>
  <div class="where" id="scheduler">connecting...</div>
  <div class="status" id="status">loading</div>
</header>
<main>
  <section class="wide"><div class="counters" id="counters"></div></section>
  <section class="wide"><h2>Workers</h2><div id="workers"></div></section>
  <section><h2>Residency map <small class="muted">(partitions by worker and tier)</small></h2>
    <div id="residency"></div><div id="cache-entries"></div></section>
  <section><h2>Jobs</h2><div id="jobs-running"></div>
    <h2 style="margin-top:12px">Recent jobs</h2><div id="jobs-recent"></div></section>
  <section><h2>Locks</h2><div id="locks"></div></section>
  <section><h2>Queues</h2><div id="queues"></div></section>
</main>
<script>
"use strict";
(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const refreshMs = 1000;
  let updates = 0;

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "style") e.style.cssText = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of [].concat(children === undefined ? [] : children)) {
      if (c === null || c === undefined) continue;
      e.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  function bytes(n) {
    if (!n) return "0 B";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; ++i; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
  }
  function percent(part, whole) {
    return whole > 0 ? Math.max(0, Math.min(100, 100 * part / whole)) : 0;
  }
  function bar(pct, cls) {
    return el("div", {class: "bar" + (cls ? " " + cls : "")},
              el("div", {style: "width:" + pct.toFixed(1) + "%"}));
  }
  function table(headers, rows, empty) {
    if (rows.length === 0) return el("div", {class: "empty"}, empty);
    const head = el("tr", {}, headers.map(h =>
      el("th", h.startsWith("#") ? {class: "num"} : {}, h.replace(/^#/, ""))));
    return el("table", {}, [el("thead", {}, head), el("tbody", {}, rows)]);
  }
  function replace(id, node) {
    const target = document.getElementById(id);
    target.replaceChildren(node);
  }

  function renderCounters(c) {
    const items = [
      ["jobs running", c.jobs_running], ["jobs finished", c.jobs_finished],
      ["jobs failed", c.jobs_failed], ["tasks running", c.tasks_running],
      ["tasks queued", c.tasks_queued], ["tasks done", c.tasks_done],
      ["shuffle", bytes(c.shuffle_bytes)], ["transport errors", c.transport_errors],
      ["catalog partitions", c.catalog_partitions]];
    replace("counters", el("div", {class: "counters"}, items.map(([name, v]) =>
      el("div", {class: "counter", "data-counter": name}, [el("b", {}, v), el("small", {}, name)]))));
  }

  function renderWorkers(workers) {
    const rows = workers.map(w => {
      const tiers = el("div", {}, w.tiers.map(t => {
        const scale = t.limit > 0 ? t.limit : Math.max(t.peak, t.used);
        const text = bytes(t.used) + (t.limit > 0 ? " / " + bytes(t.limit) : " (no limit)");
        return el("div", {class: "tier", "data-tier": t.tier},
                  [el("span", {}, t.tier), bar(percent(t.used, scale)), el("span", {}, text)]);
      }));
      return el("tr", {class: "worker", "data-worker-id": w.id, "data-worker-name": w.name,
                       "data-alive": w.alive ? "1" : "0"}, [
        el("td", {class: "num"}, w.id),
        el("td", {}, [el("div", {}, w.name), el("small", {class: "muted"}, w.description)]),
        el("td", {}, el("span", {class: "badge " + w.backend}, w.backend +
                                 (w.device >= 0 ? " #" + w.device : ""))),
        el("td", {}, [el("span", {class: "badge " + (w.alive ? "alive" : "dead")},
                         w.alive ? "alive" : "dead"),
                      el("div", {class: "muted"}, (w.heartbeat_age_ms / 1000).toFixed(1) + " s ago")]),
        el("td", {class: "num"}, w.running + " / " + w.queued + " / " + w.assigned),
        el("td", {style: "min-width:360px"}, tiers),
        el("td", {class: "num"}, [el("div", {}, "to host " + bytes(w.spilled_to_host_bytes)),
                                  el("div", {}, "to disk " + bytes(w.spilled_to_disk_bytes)),
                                  el("div", {}, "back " + bytes(w.unspilled_bytes))]),
      ]);
    });
    replace("workers", table(["#id", "worker", "backend", "state", "#running / queued / assigned",
                              "memory per tier", "#spilled"], rows, "no worker has joined"));
  }

  function renderResidency(r) {
    let most = 0;
    for (const w of r.workers)
      for (const t of r.tiers) most = Math.max(most, (w.tiers[t] || {}).bytes || 0);
    const rows = r.workers.map(w => el("tr", {class: "residency-row", "data-worker-id": w.worker},
      [el("td", {}, [el("div", {}, "worker " + w.worker), el("small", {class: "muted"}, w.name)])]
        .concat(r.tiers.map(t => {
          const cell = w.tiers[t] || {partitions: 0, bytes: 0};
          const shade = most > 0 ? 0.08 + 0.5 * cell.bytes / most : 0;
          return el("td", {class: "cell", "data-tier": t, "data-partitions": cell.partitions,
                           style: cell.partitions > 0 ? "background:rgba(76,110,245," +
                                  shade.toFixed(3) + ")" : ""},
                    [el("div", {}, cell.partitions), el("small", {}, bytes(cell.bytes))]);
        }))));
    replace("residency", table(["worker"].concat(r.tiers), rows, "no worker has joined"));
    const entries = r.cache_entries.map(e => el("tr", {class: "cache-entry"}, [
      el("td", {}, e.key), el("td", {class: "num"}, e.worker), el("td", {}, e.tier),
      el("td", {class: "num"}, e.rows), el("td", {class: "num"}, bytes(e.bytes))]));
    const title = el("h2", {style: "margin-top:12px"}, "Named cache" +
      (r.cache_entries_total > r.cache_entries.length ?
         " (first " + r.cache_entries.length + " of " + r.cache_entries_total + ")" : ""));
    replace("cache-entries", el("div", {}, [title, table(["key", "#worker", "tier", "#rows", "#bytes"],
                                                      entries, "the named cache is empty")]));
  }

  function renderJob(j) {
    const stages = j.stages.map(s => el("div", {class: "stage", "data-stage": s.name,
                                                "data-done": s.done, "data-total": s.total}, [
      el("span", {}, s.name),
      bar(percent(s.done, s.total), "progress" + (s.state === "done" ? " done" : "")),
      el("span", {class: "num"}, s.done + " / " + s.total + (s.running ? " (" + s.running + " running)" : ""))]));
    return el("div", {class: "job", "data-job-id": j.id, "data-job-state": j.state}, [
      el("div", {class: "title"}, [el("b", {}, "job " + j.id),
                                   el("span", {class: "badge " + j.state}, j.state),
                                   el("span", {class: "muted"}, j.seconds.toFixed(1) + " s"),
                                   el("span", {class: "muted"}, j.client)]),
      j.message ? el("div", {class: "msg"}, j.message) : null,
      el("div", {}, stages)]);
  }

  function renderJobs(jobs) {
    replace("jobs-running", jobs.running.length === 0 ? el("div", {class: "empty"}, "no job is running")
                                                      : el("div", {}, jobs.running.map(renderJob)));
    replace("jobs-recent", jobs.recent.length === 0 ? el("div", {class: "empty"}, "no job has ended yet")
                                                    : el("div", {}, jobs.recent.map(renderJob)));
  }

  function renderLocks(locks) {
    const rows = locks.map(l => el("tr", {class: "lock", "data-lock": l.name}, [
      el("td", {}, l.name), el("td", {class: "num"}, l.permits),
      el("td", {}, l.holders.length === 0 ? el("span", {class: "muted"}, "free") :
         el("div", {}, l.holders.map(h => el("div", {}, h.owner + " (token " + h.token + ", " +
                                                    (h.expires_in_ms / 1000).toFixed(1) + " s left)")))),
      el("td", {class: "num"}, l.waiters), el("td", {class: "num"}, l.newest_token)]));
    replace("locks", table(["lock", "#permits", "holders", "#waiters", "#newest token"], rows,
                           "no lock is held or waited for"));
  }

  function renderQueues(queues) {
    const rows = queues.map(q => el("tr", {class: "queue", "data-queue": q.name, "data-depth": q.depth}, [
      el("td", {}, q.name + (q.durable ? " (durable)" : "")),
      el("td", {style: "min-width:160px"}, bar(percent(q.depth + q.in_flight, q.capacity))),
      el("td", {class: "num"}, q.depth), el("td", {class: "num"}, q.in_flight),
      el("td", {class: "num"}, q.capacity), el("td", {class: "num"}, bytes(q.bytes))]));
    replace("queues", table(["queue", "fill", "#depth", "#in flight", "#capacity", "#bytes"], rows,
                            "no queue"));
  }

  function render(c) {
    document.getElementById("scheduler").textContent = "scheduler " + c.scheduler;
    renderCounters(c.counters);
    renderWorkers(c.workers);
    renderResidency(c.residency);
    renderJobs(c.jobs);
    renderLocks(c.locks);
    renderQueues(c.queues);
  }

  function setStatus(text, bad) {
    const s = document.getElementById("status");
    s.textContent = text;
    s.className = "status" + (bad ? " bad" : "");
  }

  async function refresh() {
    try {
      const headers = token ? {"Authorization": "Bearer " + token} : {};
      const response = await fetch("api/cluster", {headers: headers, cache: "no-store"});
      if (!response.ok) {
        setStatus("the scheduler answered " + response.status +
                  (response.status === 401 ? ": open this page with ?token=CLUSTER_TOKEN" : ""), true);
      } else {
        render(await response.json());
        ++updates;
        document.body.dataset.loaded = "1";
        document.body.dataset.updates = String(updates);
        setStatus("updated " + new Date().toLocaleTimeString(), false);
      }
    } catch (e) {
      setStatus("cannot reach the scheduler (" + e.message + "); retrying", true);
    }
    window.setTimeout(refresh, refreshMs);
  }
  refresh();
})();
</script>
</body>
</html>
)ember_page";

}  // namespace

std::string_view dashboard_page() noexcept { return page; }

}  // namespace ember::detail
