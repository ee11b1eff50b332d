/*
 * The supervisors' dashboard: live tiles (refreshed with the queue) and the figures of a
 * chosen period and team, from GET /console/api/dashboard. Figures are defined in
 * handoff/reports.py and docs/metrics.md.
 */

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { flash } from "./flash.js";
import { fmtDuration, humanize } from "./format.js";
import { connectLive } from "./live.js";

function percent(value) {
  return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + " %";
}

function seconds(value) {
  return value === null || value === undefined ? "—" : fmtDuration(value);
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

const COLORS = { blue: "#2457c5", grey: "#9aa5b1", green: "#2f855a", amber: "#b7791f" };

/** Draw (or redraw) the two charts from the period's days; Chart.js is vendored (vendor/). */
function drawCharts(charts, days) {
  const Chart = window.Chart;
  if (!Chart) return; // the library did not load: the tables still show every figure
  const labels = days.map(function (d) { return d.day.slice(5); });
  const common = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom" } },
  };
  const volume = {
    type: "bar",
    data: {
      labels: labels,
      datasets: [
        { label: "Conversations", data: days.map(function (d) { return d.conversations; }), backgroundColor: COLORS.grey, yAxisID: "y" },
        { label: "Handoffs", data: days.map(function (d) { return d.handoffs; }), backgroundColor: COLORS.blue, yAxisID: "y" },
        { type: "line", label: "Contained %", data: days.map(function (d) { return d.containment === null ? null : d.containment * 100; }), borderColor: COLORS.green, backgroundColor: COLORS.green, yAxisID: "pct", spanGaps: true },
      ],
    },
    options: Object.assign({}, common, {
      scales: {
        y: { beginAtZero: true, title: { display: true, text: "per day" } },
        pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } },
      },
    }),
  };
  const quality = {
    type: "line",
    data: {
      labels: labels,
      datasets: [
        { label: "CSAT (1-5)", data: days.map(function (d) { return d.csat_average; }), borderColor: COLORS.amber, backgroundColor: COLORS.amber, yAxisID: "csat", spanGaps: true },
        { label: "First response (min)", data: days.map(function (d) { return d.first_response_average_seconds === null ? null : d.first_response_average_seconds / 60; }), borderColor: COLORS.blue, backgroundColor: COLORS.blue, yAxisID: "min", spanGaps: true },
      ],
    },
    options: Object.assign({}, common, {
      scales: {
        csat: { min: 1, max: 5, title: { display: true, text: "stars" } },
        min: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "minutes" } },
      },
    }),
  };
  for (const [key, config] of [["volume", volume], ["quality", quality]]) {
    if (charts[key]) charts[key].destroy();
    charts[key] = new Chart($("#chart-" + key), config);
  }
}

function rows(body, list, empty, columns) {
  body.replaceChildren(
    ...(list.length ? list : [h("tr", { class: "empty" }, h("td", { colspan: columns }, empty))])
  );
}

export function initDashboard(me) {
  if (me.role !== "supervisor") return;
  const from = $("#dash-from");
  const to = $("#dash-to");
  const team = $("#dash-team");
  const today = new Date();
  to.value = isoDay(today);
  from.value = isoDay(new Date(today.getTime() - 6 * 86400000));
  let teamsShown = false;
  const charts = {};

  function params() {
    const p = new URLSearchParams({ from: from.value, to: to.value });
    if (team.value) p.set("team", team.value);
    return p;
  }

  function query() {
    return "/console/api/dashboard?" + params().toString();
  }

  function csvLinks() {
    for (const table of ["daily", "reasons", "sla", "ratings", "intents", "dispositions", "confidence"]) {
      const p = params();
      p.set("table", table);
      $("#csv-" + table).setAttribute("href", "/console/api/dashboard.csv?" + p.toString());
    }
  }

  function alertRow(alert) {
    const when = new Date(alert.hour);
    const text = alert.contacts + " customers wrote about " + alert.problem + " since " +
      when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) +
      " (usually " + Number(alert.baseline_per_hour).toFixed(2) + " an hour)";
    const ack = h("button", { type: "button", class: "btn btn--small", testid: "alert-ack" }, "Acknowledge");
    ack.addEventListener("click", async function () {
      ack.disabled = true;
      try {
        await api("POST", "/console/api/alerts/" + encodeURIComponent(alert.id) + "/acknowledge");
        load();
      } catch (err) {
        ack.disabled = false;
        flash(err.message);
      }
    });
    return h(
      "div",
      { class: "alert" + (alert.acknowledged ? " alert--done" : ""), testid: "quality-alert", dataset: { problem: alert.problem } },
      h("strong", null, alert.acknowledged ? "Acknowledged: " : "Quality alert: "),
      text,
      alert.acknowledged ? null : [" ", ack]
    );
  }

  function render(data) {
    if (!teamsShown) {
      for (const t of data.teams || []) team.append(h("option", { value: t.name }, t.title));
      teamsShown = true;
    }
    const alerts = data.alerts || [];
    const box = $("#quality-alerts");
    box.replaceChildren(...alerts.map(alertRow));
    box.hidden = alerts.length === 0;
    const live = data.live || {};
    $("#tile-waiting").textContent = String(live.waiting);
    $("#tile-online").textContent = String(live.agents_online);
    $("#tile-risk").textContent = String(live.at_risk);
    const p = data.period || {};
    $("#fig-conversations").textContent = String(p.conversations);
    $("#fig-containment").textContent = percent(p.containment);
    const durable = p.durable_containment || {};
    $("#fig-durable").textContent = durable.rate == null ? (durable.pending ? "pending (" + durable.pending + ")" : "—") : percent(durable.rate);
    const fcr = p.first_contact_resolution || {};
    $("#fig-fcr").textContent = fcr.rate == null ? (fcr.pending ? "pending (" + fcr.pending + ")" : "—") : percent(fcr.rate);
    const bot = p.bot || {};
    const ces = p.ces || {};
    $("#fig-ces").textContent = ces.average == null ? "—" : ces.average.toFixed(2) + " (" + ces.answers + ")";
    const nps = p.nps || {};
    $("#fig-nps").textContent = nps.score == null ? "—" : (nps.score > 0 ? "+" : "") + nps.score + " (" + nps.answers + ")";
    $("#fig-fallback").textContent = bot.fallback_rate == null ? "—" : percent(bot.fallback_rate) + " of " + bot.messages;
    $("#fig-repeated").textContent = percent(p.customer_repeated && p.customer_repeated.rate);
    $("#fig-handoffs").textContent = String(p.handoffs) + (p.handoff_rate === null ? "" : " (" + percent(p.handoff_rate) + ")");
    $("#fig-frt").textContent = seconds(p.first_response_seconds.p50) + " / " + seconds(p.first_response_seconds.p90);
    $("#fig-wait").textContent = seconds(p.queue_wait_seconds.p50) + " / " + seconds(p.queue_wait_seconds.p90);
    $("#fig-aht").textContent = seconds(p.average_handle_seconds);
    const csat = p.csat || {};
    $("#fig-csat").textContent = csat.average === null ? "—" : csat.average.toFixed(2) + " / 5 (" + csat.ratings + ")";

    rows($("#reasons-body"), Object.entries(p.handoffs_by_reason || {}).map(function ([reason, count]) {
      return h("tr", { testid: "reason-row" }, h("td", null, humanize(reason)), h("td", { class: "num" }, String(count)));
    }), "No handoffs in this period.", 2);
    const sla = [];
    for (const [teamName, kinds] of Object.entries(p.sla || {})) {
      for (const [kind, f] of Object.entries(kinds)) {
        sla.push(h("tr", { testid: "sla-row" },
          h("td", null, humanize(teamName)), h("td", null, humanize(kind)),
          h("td", { class: "num" }, String(f.met)), h("td", { class: "num" }, String(f.missed)),
          h("td", { class: "num" }, String(f.running)), h("td", { class: "num" }, percent(f.attainment))));
      }
    }
    rows($("#sla-body"), sla, "No SLA clocks in this period.", 6);
    rows($("#intents-body"), Object.entries(p.handoffs_by_intent || {}).map(function ([intent, count]) {
      return h("tr", { testid: "intent-row" }, h("td", null, intent), h("td", { class: "num" }, String(count)));
    }), "No handoffs in this period.", 2);
    rows($("#dispositions-body"), Object.entries(p.dispositions || {}).map(function ([name, count]) {
      return h("tr", { testid: "disposition-row" }, h("td", null, humanize(name)), h("td", { class: "num" }, String(count)));
    }), "No wrap-ups in this period.", 2);
    $("#bot-should").textContent = p.bot_should_have_handled ? p.bot_should_have_handled + " the bot should have handled" : "";
    rows($("#confidence-body"), (bot.lowest_confidence || []).map(function (row) {
      return h("tr", { testid: "confidence-row" }, h("td", null, row.intent), h("td", { class: "num" }, String(row.messages)),
        h("td", { class: "num" }, String(row.low_confidence)), h("td", { class: "num" }, percent(row.average_confidence)));
    }), "No customer messages in this period.", 4);
    drawCharts(charts, p.daily || []);
    csvLinks();
    rows($("#csat-body"), ["5", "4", "3", "2", "1"].map(function (stars) {
      return h("tr", null, h("td", null, "\u2605".repeat(Number(stars))), h("td", { class: "num" }, String((csat.distribution || {})[stars] || 0)));
    }), "", 2);
  }

  async function load() {
    try {
      render(await api("GET", query()));
    } catch (err) {
      flash(err.message);
    }
  }

  $("#dash-filters").addEventListener("submit", function (event) {
    event.preventDefault();
    load();
  });
  team.addEventListener("change", load);
  load();
  let last = 0;
  connectLive(function (event) {
    if (event.type !== "queue" && event.type !== "sla" && event.type !== "quality_alert") return;
    if (Date.now() - last < 2000) return;
    last = Date.now();
    load();
  });
}
