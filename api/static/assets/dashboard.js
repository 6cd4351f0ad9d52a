// The live dashboard: polls the API every 2 s and renders six panels. No framework, no CDN,
// no inline code (the page's Content-Security-Policy forbids it). Data is always inserted as
// text, never as HTML: hashtags and names come from producers.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  const TOKEN_KEY = "fk.dashboard.token";
  const devToken = document.querySelector('meta[name="fk-dev-token"]').content;
  const number = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const $ = (id) => document.getElementById(id);

  let token = devToken || sessionStorage.getItem(TOKEN_KEY) || "";
  let timer = null;
  let inFlight = false;

  class HttpError extends Error {
    constructor(status, detail) {
      super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
      this.status = status;
    }
  }

  async function getJson(path) {
    let response;
    try {
      response = await fetch(path, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
    } catch (err) {
      throw new HttpError(0, "the platform does not answer");
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const problem = await response.json();
        detail = problem.detail || problem.title || detail;
      } catch (err) { /* not problem details: keep the status text */ }
      throw new HttpError(response.status, detail);
    }
    return response.json();
  }

  // -- rendering ---------------------------------------------------------------------------

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function fillTable(id, rows, columns, empty) {
    const body = $(id).tBodies[0];
    const fresh = document.createElement("tbody");
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const column of columns) tr.append(column(row));
      if (row.key) tr.dataset.key = row.key;
      fresh.append(tr);
    }
    if (!rows.length) {
      const tr = document.createElement("tr");
      const td = cell(empty, "empty");
      td.colSpan = [...$(id).tHead.rows[0].cells].reduce((n, th) => n + th.colSpan, 0);
      tr.append(td);
      fresh.append(tr);
    }
    body.replaceWith(fresh);
  }

  const num = (v) => cell(number.format(v), "num");
  const pct = (v) => cell(`${decimal.format(v)} %`, "num");
  const windowCells = (w) => [num(w.views), num(w.engagements), pct(w.engagementRate)];

  // A campaign by its name with its id beneath (the id is what the API's paths take); an id
  // nobody created a campaign for stands alone.
  function campaignCell(name, campaignId) {
    const td = cell(name || campaignId, "name");
    td.title = campaignId;
    if (name && name !== campaignId) {
      const id = document.createElement("small");
      id.className = "id";
      id.textContent = campaignId;
      td.append(id);
    }
    return td;
  }

  function renderCampaigns(data) {
    fillTable("campaigns", data.items.map((c) => ({ ...c, key: c.campaignId })), [
      (c) => {
        const td = campaignCell(c.name, c.campaignId);
        if (c.status) td.insertBefore(badge(c.status), td.querySelector("small.id"));
        return td;
      },
      (c) => fragment(windowCells(c.window1h)),
      (c) => fragment(windowCells(c.window24h)),
      (c) => fragment(windowCells(c.total)),
    ], "No campaign events yet.");
  }

  function renderPerformers(data) {
    fillTable("performers", data.items.map((p) => ({ ...p, key: p.influencerId })), [
      (p) => cell(p.handle || p.influencerId, "name"),
      (p) => cell(p.platform),
      (p) => cell(decimal.format(p.engagementScore), "num strong"),
      (p) => pct(p.engagementRate),
      (p) => num(p.views),
      (p) => cell(`${p.scoreComponents.cohort} (${p.scoreComponents.cohortSize})`),
      (p) => pct(p.scoreComponents.typicalPostRate),
      (p) => pct(p.scoreComponents.cohortPostRate),
      (p) => cell(decimal.format(p.scoreComponents.robustZ), "num"),
      (p) => cell(decimal.format(p.scoreComponents.shrinkage), "num"),
    ], "No creators yet.");
  }

  function renderHashtags(data) {
    fillTable("hashtags", data.items.map((t) => ({ ...t, key: t.tag })), [
      (t) => cell(t.tag, "name"),
      (t) => {
        const td = num(t.events24h);
        td.classList.add(t.events24h >= t.previous24h ? "up" : "down");
        return td;
      },
      (t) => num(t.previous24h),
      (t) => pct(t.engagementRate),
    ], "No hashtags in the last 24 h.");
  }

  const INSIGHT_WORDS = { spike: "spike", stall: "stall", rateDrop: "rate drop" };

  // Counts as counts; an engagement rate (a rateDrop's, a share of views) in percent, like
  // every other rate on the page.
  function insightValue(insight, value) {
    return insight.metric === "engagementRate" ? pct(value * 100) : num(value);
  }

  function renderInsights(data) {
    const names = data.campaignNames || {};
    fillTable("insights", data.items.map((i) => ({ ...i, key: i.eventId })), [
      (i) => {
        const td = cell(new Date(i.occurredAt).toLocaleString());
        td.title = `first seen ${new Date(i.firstSeen).toLocaleString()}`;
        return td;
      },
      (i) => {
        const td = document.createElement("td");
        td.append(badge(i.kind, INSIGHT_WORDS[i.kind]), badge(i.status));
        return td;
      },
      (i) => {
        if (i.scope.kind !== "campaign") {
          const td = cell(`creator ${i.scope.id}`, "name");
          td.title = i.scope.id;
          return td;
        }
        return campaignCell(names[i.campaignId], i.campaignId);
      },
      (i) => cell(i.metric),
      (i) => insightValue(i, i.observed),
      (i) => insightValue(i, i.expected),
      (i) => cell(i.expected > 0 ? `${decimal.format(i.observed / i.expected)}x` : "–", "num strong"),
      (i) => cell(decimal.format(i.score), "num"),
    ], "No insights yet: spikes, stalls and rate drops show here as they are detected.");
  }

  function renderActivity(data) {
    fillTable("activity", data.items.map((c) => ({ ...c, key: c.campaignId })), [
      (c) => campaignCell(c.name, c.campaignId),
      (c) => {
        const td = document.createElement("td");
        td.append(badge(c.status));
        return td;
      },
      (c) => num(c.version),
      (c) => cell(new Date(c.updatedAt).toLocaleString()),
    ], "Your organisation has no campaigns yet.");
  }

  function renderWebhooks(data) {
    $("webhook-summary").textContent = data.attempts
      ? `${number.format(data.attempts)} attempts · ${decimal.format(data.successRate)} % delivered · ` +
        `${number.format(data.retrying)} retrying · ${number.format(data.dead)} dead-lettered`
      : "No delivery attempts in the last 24 h.";
    fillTable("webhooks", data.endpoints.map((e) => ({ ...e, key: e.endpointId })), [
      (e) => {
        const td = cell(e.url, "name url");
        td.title = e.endpointId;
        return td;
      },
      (e) => num(e.attempts),
      (e) => num(e.delivered),
      (e) => num(e.retrying),
      (e) => num(e.dead),
      (e) => {
        const td = document.createElement("td");
        td.append(badge(e.lastStatus));
        return td;
      },
      (e) => cell(`${number.format(e.p95LatencyMs)} ms`, "num"),
    ], "No endpoint was called.");
  }

  function badge(text, label) {
    const span = document.createElement("span");
    span.className = `badge badge-${text}`;
    span.textContent = label || text;
    return span;
  }

  // Several cells from one column function: a fragment whose children become the row's cells.
  function fragment(cells) {
    const f = document.createDocumentFragment();
    f.append(...cells);
    return f;
  }

  // -- the refresh loop --------------------------------------------------------------------

  const panels = [
    { id: "campaigns-panel", path: () => "/engagement/campaigns?limit=10", render: renderCampaigns },
    { id: "insights-panel", path: () => "/insights?limit=10", render: renderInsights },
    { id: "performers-panel", path: () => "/top-performers?sort=engagementScore&limit=10", render: renderPerformers },
    {
      id: "hashtags-panel",
      path: () => `/trends/hashtags?limit=10${$("platform").value ? `&platform=${encodeURIComponent($("platform").value)}` : ""}`,
      render: renderHashtags,
    },
    { id: "activity-panel", path: () => "/activity/campaigns?limit=10", render: renderActivity },
    { id: "webhooks-panel", path: () => "/webhooks/health", render: renderWebhooks },
  ];

  function setState(kind, text) {
    const state = $("state");
    state.className = `pill pill-${kind}`;
    state.textContent = text;
  }

  function showAlert(text) {
    $("alert").textContent = text;
    $("alert").hidden = !text;
  }

  async function refresh() {
    if (inFlight || !token) return;
    inFlight = true;
    try {
      const results = await Promise.allSettled(panels.map((p) => getJson(p.path())));
      const failures = [];
      results.forEach((result, i) => {
        const panel = $(panels[i].id);
        const error = panel.querySelector(".panel-error");
        if (result.status === "fulfilled") {
          panels[i].render(result.value);
          panel.classList.remove("stale");
          error.hidden = true;
        } else {
          failures.push(result.reason);
          panel.classList.add("stale");
          error.textContent = `Not updated: ${result.reason.message}`;
          error.hidden = false;
        }
      });
      if (failures.some((f) => f.status === 401)) {
        unauthorised();
      } else if (failures.length) {
        setState("error", failures.length === panels.length ? "offline" : "partly stale");
        showAlert(`Update failed (${failures[0].message}); retrying every ${REFRESH_MS / 1000} s.`);
      } else {
        setState("live", "live");
        showAlert("");
        $("updated").textContent = `updated ${clock.format(new Date())}`;
      }
    } finally {
      inFlight = false;
    }
  }

  function unauthorised() {
    setState("error", "unauthorised");
    if (devToken) {
      showAlert("The development token was refused (expired?): reload the page for a new one.");
      stop();
    } else {
      showAlert("The token was refused (expired or for another platform): enter a new one.");
      signOut();
    }
  }

  function start() {
    $("login").hidden = true;
    $("panels").hidden = false;
    $("signout").hidden = Boolean(devToken);
    $("org").textContent = orgOf(token);
    stop();
    refresh();
    timer = setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  function signOut() {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    $("panels").hidden = true;
    $("signout").hidden = true;
    $("org").textContent = "";
    $("login").hidden = false;
    $("token").focus();
  }

  // The organisation the token speaks for (display only: the API verifies the token).
  function orgOf(jwt) {
    try {
      const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const org = JSON.parse(atob(payload)).org;
      return org ? `org ${org}${devToken ? " (development token)" : ""}` : "";
    } catch (err) {
      return "";
    }
  }

  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    showAlert("");
    start();
  });
  $("signout").addEventListener("click", () => {
    showAlert("");
    setState("wait", "signed out");
    signOut();
  });
  $("platform").addEventListener("change", () => refresh());

  if (token) {
    start();
  } else {
    setState("wait", "needs a token");
    signOut();
  }
})();
