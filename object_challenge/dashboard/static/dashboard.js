// The operator dashboard: hash routes, each view reads /newapi/dashboard/* (admins only)
// and acts through the services' own routes. Every value is shown with textContent.
"use strict";

(() => {
  const { api, el, clear, notice, sse, sleep } = OC;
  const main = document.getElementById("main");
  const PAGE = 25;
  let refreshTimer = null;
  let viewAbort = null; // aborts a view's live stream when the route changes

  const enc = encodeURIComponent;
  const when = (iso) => (iso ? String(iso).replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : "");

  function table(headers, rows, empty) {
    if (!rows.length) return el("p", { class: "empty" }, empty || "nothing here");
    return el(
      "table",
      {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))),
    );
  }

  function pager(total, offset, hrefFor) {
    const last = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
    return el(
      "p",
      { class: "pager" },
      offset > 0 ? el("a", { href: hrefFor(Math.max(0, offset - PAGE)) }, "← previous") : null,
      ` ${total ? offset + 1 : 0}–${Math.min(total, offset + PAGE)} of ${total} `,
      offset + PAGE < total ? el("a", { href: hrefFor(offset + PAGE) }, "next →") : null,
      offset + PAGE < total ? el("a", { href: hrefFor(last) }, " last") : null,
    );
  }

  function button(label, action, cls) {
    return el(
      "button",
      {
        type: "button",
        class: cls || "",
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await action();
            notice(null);
          } catch (err) {
            notice(`${label} refused: ${err.message}`);
          }
          route();
        },
      },
      label,
    );
  }

  const jobLink = (id) => el("a", { href: `#/job/${enc(id)}`, class: "mono" }, id.slice(0, 8));
  const cancelJob = (id) => api(`/newapi/jobs/${enc(id)}/cancel`, { method: "POST" });

  // -- views ---------------------------------------------------------------------
  let lastCounts = null; // {at, gateway}: the previous overview's counters, for rates

  function rates(gateway) {
    if (!gateway) return el("p", { class: "empty" }, "the gateway's metrics listener does not answer");
    const now = Date.now();
    const before = lastCounts;
    lastCounts = { at: now, gateway };
    if (!before) return el("p", { class: "empty" }, "rates from the next refresh on (2 s)");
    const seconds = Math.max(0.001, (now - before.at) / 1000);
    const rate = (a, b) => ((a - (b || 0)) / seconds).toFixed(1);
    const rows = [];
    for (const [route, statuses] of Object.entries(gateway.requests)) {
      for (const [status, n] of Object.entries(statuses)) {
        const old = before.gateway.requests[route] ? before.gateway.requests[route][status] : 0;
        rows.push([route, status, rate(n, old), String(n)]);
      }
    }
    const refused = Object.entries(gateway.refusals).map(([status, n]) => [
      status,
      rate(n, before.gateway.refusals[status]),
      String(n),
    ]);
    return el(
      "div",
      { class: "cards" },
      el("section", { class: "card" }, el("h2", {}, "Requests (gateway)"), table(["route", "status", "per s", "total"], rows)),
      el("section", { class: "card" }, el("h2", {}, "Refusals (gateway)"), table(["status", "per s", "total"], refused)),
    );
  }

  async function overview() {
    const { data } = await api("/newapi/dashboard/overview");
    const health = (obj) =>
      Object.entries(obj).map(([name, state]) => el("li", { class: state === "ok" ? "ok" : "bad" }, `${name}: ${state}`));
    return [
      el("h1", {}, "Overview"),
      el(
        "div",
        { class: "cards" },
        el("section", { class: "card" }, el("h2", {}, "Stores"), el("ul", {}, health(data.stores))),
        el("section", { class: "card" }, el("h2", {}, "Services"), el("ul", {}, health(data.services))),
        el(
          "section",
          { class: "card" },
          el("h2", {}, "Jobs"),
          el("ul", {}, Object.entries(data.jobs).map(([s, n]) => el("li", {}, `${s}: ${n}`))),
          el("p", {}, `live workers: ${data.workers}`),
        ),
        el(
          "section",
          { class: "card" },
          el("h2", {}, "Puzzles"),
          el("ul", {}, Object.entries(data.puzzles).map(([s, n]) => el("li", {}, `${s}: ${n}`))),
        ),
      ),
      el("h2", {}, "Queue depths"),
      queueTable(data.queues),
      el("h2", {}, "Request and refusal rates"),
      rates(data.gateway),
    ];
  }

  function queueTable(queues) {
    return table(
      ["queue", "waiting", "running", "state"],
      queues.map((q) => [
        el("a", { href: `#/queue/${enc(q.name)}/0` }, q.name),
        String(q.waiting),
        String(q.running),
        q.disabled ? el("span", { class: "bad" }, "disabled") : "enabled",
      ]),
      "no queue has been used yet",
    );
  }

  async function queues() {
    const { data } = await api("/newapi/dashboard/overview");
    return [el("h1", {}, "Queues"), queueTable(data.queues)];
  }

  async function queuePage(name, offset) {
    const [{ data }, extra] = await Promise.all([
      api(`/newapi/dashboard/queues/${enc(name)}?offset=${offset}&limit=${PAGE}`),
      api(`/newapi/queue?queue=${enc(name)}&limit=1`).catch(() => null),
    ]);
    const disabled = Boolean(data.attributes.disabled);
    const stranded = extra && extra.data.attributes ? extra.data.attributes.stranded : undefined;
    const row = (j) => [
      jobLink(j.job_id),
      el("span", { class: "title-cell" }, j.job_title),
      j.modules.join(", "),
      String(j.attempt),
      j.worker_id,
      when(j.added),
      button("cancel", () => cancelJob(j.job_id), "danger"),
    ];
    const headers = ["job", "title", "modules", "attempt", "worker", "added", ""];
    return [
      el("h1", {}, "Queue ", el("span", { class: "mono" }, name)),
      el(
        "p",
        {},
        disabled ? el("span", { class: "bad" }, "disabled ") : "enabled ",
        button(disabled ? "enable" : "disable", () =>
          api(`/newapi/queue?queue=${enc(name)}`, { method: "PATCH", body: { disabled: !disabled } }),
        ),
      ),
      el(
        "p",
        { class: "facts" },
        `waiting ${data.waiting.total} · running ${data.running_total}`,
        stranded !== undefined ? ` · stranded ${stranded}` : "",
        ` · finished in the last hour: ${data.finished_last_hour.completed || 0} completed, ${data.finished_last_hour.failed || 0} failed`,
      ),
      el("h2", {}, "Running"),
      table(headers, data.running.map(row), "no running job"),
      el("h2", {}, "Waiting"),
      pager(data.waiting.total, offset, (o) => `#/queue/${enc(name)}/${o}`),
      table(headers, data.waiting.jobs.map(row), "no waiting job"),
    ];
  }

  async function workersView(offset) {
    const { data } = await api(`/newapi/dashboard/workers?offset=${offset}&limit=${PAGE}`);
    return [
      el("h1", {}, "Workers"),
      pager(data.total, offset, (o) => `#/workers/${o}`),
      table(
        ["worker", "status", "last heartbeat", "modules", "queue", "holds", ""],
        data.workers.map((w) => {
          const disabled = Boolean(w.attributes && w.attributes.disabled);
          const modules = Array.isArray(w.modules) ? w.modules.join(", ") : w.modules || "any";
          return [
            el("span", { class: "mono" }, w.worker_id),
            disabled ? el("span", { class: "bad" }, `${w.status || ""} (disabled)`) : String(w.status || ""),
            when(w.last_seen),
            String(modules),
            String(w.queue || ""),
            el("span", {}, (w.jobs || []).map((id) => jobLink(id))),
            button(disabled ? "enable" : "disable", () =>
              api(`/newapi/workers/${enc(w.worker_id)}`, { method: "PATCH", body: { disabled: !disabled } }),
            ),
          ];
        }),
        "no live worker",
      ),
    ];
  }

  async function finishedView(state, offset) {
    const { data } = await api(`/newapi/dashboard/finished?state=${enc(state)}&offset=${offset}&limit=${PAGE}`);
    return [
      el("h1", {}, "Finished jobs"),
      el(
        "p",
        {},
        el("a", { href: "#/finished/completed", class: state === "completed" ? "current" : "" }, "completed"),
        " · ",
        el("a", { href: "#/finished/failed", class: state === "failed" ? "current" : "" }, "failed"),
        " · ",
        el("a", { href: "#/finished/cancelled", class: state === "cancelled" ? "current" : "" }, "cancelled"),
      ),
      pager(data.total, offset, (o) => `#/finished/${state}/${o}`),
      table(
        ["job", "title", "modules", "attempts", "worker"],
        data.jobs.map((j) => [jobLink(j.job_id), j.job_title, j.modules.join(", "), String(j.attempt), j.worker_id]),
      ),
    ];
  }

  async function jobView(id) {
    const { data: job } = await api(`/newapi/jobs/${enc(id)}`);
    const events = el("ol", { class: "events", id: "events" });
    const eventsState = el("p", { class: "facts", id: "events-state" }, "connecting to the event stream…");
    const final = ["completed", "failed", "cancelled"].includes(job.state);
    const retry = () =>
      api(`/newapi/queue?queue=${enc(job.queue || "queue")}`, {
        method: "POST",
        body: { job_title: job.job_title, tasks: job.tasks },
      }).then(({ data }) => {
        location.hash = `#/job/${enc(data.job_id)}`;
      });
    const view = [
      el("h1", {}, "Job ", el("span", { class: "mono" }, job.job_id)),
      el("p", { class: "title-cell job-title" }, job.job_title || ""),
      el(
        "p",
        {},
        el("span", { class: `state ${job.state}`, id: "job-state" }, job.state),
        " ",
        final ? null : button("cancel", () => cancelJob(job.job_id), "danger"),
        final ? button("retry (as a new job)", retry) : null,
      ),
      el("h2", {}, "History"),
      table(
        ["event", "at", "details"],
        (job.history || []).map((h) => {
          const { event, at, ...rest } = h;
          return [event, when(at), JSON.stringify(rest)];
        }),
      ),
      el("h2", {}, "Events (live)"),
      eventsState,
      events,
      el("h2", {}, "Document"),
      el("pre", { class: "doc" }, JSON.stringify(job, null, 2)),
    ];
    followEvents(job.job_id, events, eventsState);
    return view;
  }

  // The job's events over its stream (fetch + Authorization), resuming after the last id.
  async function followEvents(id, list, state) {
    const signal = viewAbort.signal;
    let after = "";
    let delay = 500;
    while (!signal.aborted) {
      let ended = false;
      try {
        await sse(`/newapi/jobs/${enc(id)}/events/stream${after ? `?after=${enc(after)}` : ""}`, {
          signal,
          onOpen: () => {
            state.textContent = "live";
            delay = 500;
          },
          onEvent: (msg) => {
            if (msg.id) after = msg.id;
            if (msg.event === "end") {
              ended = true;
              state.textContent = "the job is finished: no more events";
              return;
            }
            list.appendChild(el("li", { class: "event" }, el("span", { class: "mono" }, msg.id || ""), " ", msg.data));
          },
        });
      } catch (err) {
        if (signal.aborted) return;
        if (err.status === 404 && err.code !== "job_not_found") {
          state.textContent = "this deployment has no job event stream";
          return;
        }
        state.textContent = `stream dropped (${err.message}); reconnecting…`;
      }
      if (ended) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  async function runs(offset) {
    const { data } = await api(`/newapi/dashboard/runs?offset=${offset}&limit=${PAGE}`);
    return [
      el("h1", {}, "Runs"),
      pager(data.total, offset, (o) => `#/runs/${o}`),
      table(
        ["run (its output live on the job page)", "language", "mode", "state", "verdict", "added"],
        data.runs.map((r) => [
          jobLink(r.run_id),
          String(r.language || ""),
          String(r.mode || ""),
          r.state,
          r.verdict ? el("span", { class: r.verdict === "accepted" || r.verdict === "ok" ? "ok" : "bad" }, r.verdict) : "",
          when(r.added),
        ]),
        "no run yet",
      ),
    ];
  }

  // Campaigns: the campaigns service's own routes (list, then each one's progress).
  async function campaigns(offset) {
    let list;
    try {
      list = (await api("/newapi/campaigns")).data.campaigns;
    } catch (err) {
      if (err.status === 404) return [el("h1", {}, "Campaigns"), el("p", { class: "empty" }, "No campaigns service here.")];
      throw err;
    }
    const page = list.slice(offset, offset + PAGE);
    const [progress, rates] = await Promise.all([
      Promise.all(page.map((c) => api(`/newapi/campaigns/${enc(c.campaign_id)}`).then((r) => r.data, () => null))),
      Promise.all(
        page.map((c) => api(`/newapi/dashboard/campaigns/${enc(c.campaign_id)}/rate`).then((r) => r.data, () => null)),
      ),
    ]);
    const cards = progress.map((c, i) => c && campaignCard(c, rates[i])).filter(Boolean);
    return [
      el("h1", {}, "Campaigns"),
      pager(list.length, offset, (o) => `#/campaigns/${o}`),
      cards.length ? cards : el("p", { class: "empty" }, "no campaign yet"),
    ];
  }

  // ids/s over the pass as an inline SVG polyline (no library); its numbers as the title
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    for (const child of children) node.appendChild(child);
    return node;
  }

  function rateChart(rate) {
    const samples = (rate && rate.samples) || [];
    if (!samples.length) return el("p", { class: "empty rate-chart-empty" }, "ids/s: no pass yet");
    const width = 240;
    const height = 48;
    const values = samples.map((s) => Number(s.ids_per_second) || 0);
    const top = Math.max(...values, 1);
    const step = values.length > 1 ? width / (values.length - 1) : width;
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
    const peak = Math.max(...values);
    const label = `ids/s over pass ${rate.pass}, ${samples.length} slices of ${rate.bin_s} s, peak ${peak}`;
    return el(
      "p",
      { class: "rate" },
      svg(
        "svg",
        { class: "rate-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label },
        svg("title", {}, document.createTextNode(label)),
        svg("line", { x1: 0, y1: height - 1, x2: width, y2: height - 1, class: "axis" }),
        svg("polyline", { points: points.join(" "), class: "line", "data-count": values.length }),
      ),
      el("span", { class: "facts" }, ` ids/s, peak ${peak}, now ${values[values.length - 1]}`),
    );
  }

  function campaignCard(c, rate) {
    const span = c.pass_range ? c.pass_range.end - c.pass_range.start + 1 : 0;
    const pct = span ? Math.min(100, Math.floor((100 * c.ids_done) / span)) : c.state === "done" ? 100 : 0;
    const b = c.batches || {};
    const failed = c.failed_batches || [];
    return el(
      "section",
      { class: "card campaign", "data-campaign": c.campaign_id },
      el("h2", {}, c.name, " ", el("span", { class: "facts" }, `(${c.state}${c.paused ? ", paused" : ""}, pass ${c.pass})`)),
      el("p", {}, el("progress", { max: "100", value: String(pct) }), el("span", { class: "pct" }, ` ${pct}%`)),
      el(
        "p",
        { class: "facts" },
        `ids ${c.ids_done} of ${span} · ${c.ids_per_second ?? "–"} ids/s · ETA ${c.eta_s ?? "–"} s · ` +
          `batches ${b.done || 0}/${b.total || 0} done, ${b.running || 0} running, ${b.queued || 0} queued, ${b.failed || 0} failed · ` +
          `players found ${c.players_found}`,
      ),
      rateChart(rate),
      (c.growth || []).length
        ? el("p", { class: "facts" }, "growth: ", c.growth.map((g) => JSON.stringify(g)).join("; "))
        : null,
      failed.length
        ? el(
            "div",
            {},
            el("h3", {}, `Failed batches (${failed.length})`),
            el("pre", { class: "doc" }, JSON.stringify(failed.slice(0, 10), null, 1)),
            button("retry failed batches", () =>
              api(`/newapi/campaigns/${enc(c.campaign_id)}/batches/retry`, { method: "POST", body: {} }),
            ),
          )
        : null,
    );
  }

  async function puzzles(offset) {
    const { data } = await api(`/newapi/dashboard/puzzles?offset=${offset}&limit=${PAGE}`);
    return [
      el("h1", {}, "Puzzles"),
      el("p", { class: "hint" }, "live players: the puzzle pages (and other update streams) open on the puzzle now"),
      pager(data.total, offset, (o) => `#/puzzles/${o}`),
      table(
        ["puzzle", "size", "status", "completion", "in Redis", "moves", "live players"],
        data.puzzles.map((p) => [
          el("a", { href: `/puzzle/${p.puzzle_id}/`, target: "_blank", rel: "noopener" }, `#${p.puzzle_id}`),
          `${p.rows}×${p.cols}`,
          p.status,
          p.completion === null
            ? "–"
            : el("span", {}, el("progress", { max: "100", value: String(p.completion) }), ` ${p.completion}%`),
          p.live ? "live" : "",
          p.seq === null ? "" : String(p.seq),
          el("span", { class: "players", "data-puzzle": p.puzzle_id }, String(p.live_players ?? 0)),
        ]),
        "no puzzle yet",
      ),
    ];
  }

  // -- routing ---------------------------------------------------------------------
  const ROUTES = [
    [/^#\/(overview)?$/, () => overview(), true],
    [/^#\/queues$/, () => queues(), true],
    [/^#\/queue\/([^/]+)\/(\d+)$/, (m) => queuePage(decodeURIComponent(m[1]), Number(m[2])), true],
    [/^#\/workers(?:\/(\d+))?$/, (m) => workersView(Number(m[1] || 0)), true],
    [/^#\/finished\/(completed|failed|cancelled)(?:\/(\d+))?$/, (m) => finishedView(m[1], Number(m[2] || 0)), false],
    [/^#\/job\/([^/]+)$/, (m) => jobView(decodeURIComponent(m[1])), false],
    [/^#\/runs(?:\/(\d+))?$/, (m) => runs(Number(m[1] || 0)), true],
    [/^#\/campaigns(?:\/(\d+))?$/, (m) => campaigns(Number(m[1] || 0)), true],
    [/^#\/puzzles(?:\/(\d+))?$/, (m) => puzzles(Number(m[1] || 0)), true],
  ];

  let routeSeq = 0;
  async function route(fromTimer) {
    const hash = location.hash || "#/overview";
    const mine = ++routeSeq;
    clearTimeout(refreshTimer);
    if (!fromTimer) {
      if (viewAbort) viewAbort.abort();
      viewAbort = new AbortController();
    }
    for (const [pattern, view, refresh] of ROUTES) {
      const match = hash.match(pattern);
      if (!match) continue;
      try {
        const nodes = await view(match);
        if (mine !== routeSeq) return;
        const fresh = el("div", {}, nodes);
        // a refresh that changes nothing keeps the page (and the button under the mouse)
        if (!(fromTimer && fresh.textContent === main.textContent)) clear(main).append(...fresh.childNodes);
        main.dataset.view = hash;
        if (refresh) refreshTimer = setTimeout(() => route(true), 2000);
      } catch (err) {
        if (mine !== routeSeq) return;
        if (err.status === 403) return refuse(err.message);
        clear(main).append(el("p", { class: "bad" }, `Could not load this page: ${err.message}`));
      }
      return;
    }
    clear(main).append(el("p", {}, "No such page. ", el("a", { href: "#/overview" }, "Overview")));
  }

  function refuse(message) {
    clearTimeout(refreshTimer);
    document.getElementById("nav").hidden = true;
    clear(main).append(
      el(
        "div",
        { class: "refusal", id: "refusal" },
        el("h1", {}, "Operators only"),
        el("p", {}, "This dashboard needs an admin token. ", message || ""),
        el("p", {}, "Use “forget token” above and give an admin token."),
      ),
    );
  }

  OC.start((identity) => {
    if (identity.role !== "admin") {
      return refuse(`The token you gave belongs to ${identity.name}, whose role is ${identity.role}.`);
    }
    document.getElementById("nav").hidden = false;
    window.addEventListener("hashchange", () => route());
    route();
  });
})();
