// The experiment dashboard: GET /api/stats rendered as a verdict, a table and charts.
// The table carries every number as text; the charts (Chart.js, vendored) only draw them.

import { ApiError, callApi } from "./api.js";
import { formatMs, formatNumber, formatPercent } from "./format.js";

const VARIANT_COLOURS = ["#1d3557", "#e07a00", "#2a9d8f", "#8e44ad", "#6c757d"];
const SRM_ALARM_P_VALUE = 0.001; // below this the traffic split itself is suspect

/**
 * The votes-over-time series per period: `buckets` slots of `slotSeconds`, ending now.
 * "All time" shows the last day, since the API gives no earliest timestamp.
 */
const TIMELINES = {
  "": { buckets: 8, slotSeconds: 3 * 3600 },
  3600: { buckets: 6, slotSeconds: 600 },
  86400: { buckets: 8, slotSeconds: 3 * 3600 },
  604800: { buckets: 7, slotSeconds: 86400 },
};

const form = document.getElementById("stats-form");
const periodSelect = document.getElementById("since");
const refreshButton = document.getElementById("refresh-button");
const statusLine = document.getElementById("stats-status");
const errorBox = document.getElementById("stats-error");
const emptyState = document.getElementById("stats-empty");
const content = document.getElementById("stats-content");
const charts = new Map();
let loadCounter = 0; // each load's number; a slower, older load must not overwrite a newer one

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
periodSelect.addEventListener("change", () => load());

load();

async function load() {
  const thisLoad = ++loadCounter;
  const period = periodSelect.value;
  refreshButton.disabled = true;
  statusLine.textContent = "Loading statistics…";
  errorBox.hidden = true;
  try {
    const report = await fetchStats(sinceFor(period));
    if (thisLoad !== loadCounter) return; // a newer request superseded this one
    render(report);
    statusLine.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
    if (report.variants.length > 0) await renderTimeline(period, report, thisLoad);
  } catch (error) {
    if (thisLoad !== loadCounter) return;
    if (!(error instanceof ApiError)) console.error(error);
    content.hidden = true;
    emptyState.hidden = true;
    statusLine.textContent = "";
    errorBox.textContent = `Could not load the statistics: ${
      error instanceof ApiError ? error.message : "something went wrong in the page."
    }`;
    errorBox.hidden = false;
  } finally {
    if (thisLoad === loadCounter) refreshButton.disabled = false;
  }
}

function sinceFor(periodSeconds) {
  if (!periodSeconds) return null;
  return new Date(Date.now() - Number(periodSeconds) * 1000);
}

async function fetchStats(since) {
  const query = since ? `?since=${encodeURIComponent(since.toISOString())}` : "";
  const report = await callApi(`stats${query}`);
  if (!report || !Array.isArray(report.variants) || !report.verdict) {
    throw new ApiError("The statistics came back in a shape this page does not know.", {
      code: "bad_response",
    });
  }
  return report;
}

// ----- rendering -----

function render(report) {
  const variants = [...report.variants].sort((a, b) => a.variant.localeCompare(b.variant));
  if (variants.length === 0 || report.total_requests === 0) {
    content.hidden = true;
    emptyState.hidden = false;
    return;
  }
  emptyState.hidden = true;
  content.hidden = false;
  renderVerdict(report, variants);
  renderTable(report, variants);
  renderCategories(report, variants);
  renderCharts(report, variants);
}

function renderVerdict(report, variants) {
  // The decision is the API's (one rule for every client); the page only words it.
  const {
    decision,
    leader,
    probability_best: probabilityBest,
    expected_loss: expectedLoss,
    min_votes_per_variant: minVotes,
    decision_probability: decisionProbability,
    probability_no_lift: probabilityNoLift,
    min_lift: minLift,
    votes_needed: votesNeeded,
  } = report.verdict;
  const votes = variants.reduce((sum, item) => sum + item.up + item.down, 0);
  const stillNeeded = Object.entries(votesNeeded)
    .filter(([, count]) => count > 0)
    .map(([variant, count]) => `about ${count} more on ${variant}`)
    .join(" and ");
  const needs = stillNeeded ? ` At the current rates the round needs ${stillNeeded}.` : "";
  const leaderProbability = formatPercent(probabilityBest[leader] ?? 0, 1);
  const verdict = document.getElementById("verdict");
  if (decision === "one_variant") {
    verdict.textContent = `Only variant ${leader} has traffic in this period; there is nothing to compare yet.`;
  } else if (decision === "too_few_votes") {
    const short = variants.filter((item) => item.up + item.down < minVotes).map((item) => item.variant);
    verdict.textContent = `Not enough votes yet (${votes} in all): variant ${short.join(" and ")} ${short.length === 1 ? "has" : "have"} fewer than ${minVotes}, the number each variant needs before a winner is called.${needs}`;
  } else if (decision === "winner") {
    verdict.textContent = `Variant ${leader} wins: it is best with probability ${leaderProbability}, and choosing it risks losing ${formatPercent(expectedLoss[leader], 2)} of up-rate (${votes} votes).`;
  } else if (decision === "no_lift") {
    verdict.textContent = `No lift worth having: the variants' up-rates are within ${formatPercent(minLift)} of each other with probability ${formatPercent(probabilityNoLift, 1)} (${votes} votes). Keep the current champion.`;
  } else {
    verdict.textContent = `Too close to call: variant ${leader} leads with P(best) ${leaderProbability}, below the ${formatPercent(decisionProbability)} needed (${votes} votes).${needs}`;
  }

  const warning = document.getElementById("srm-warning");
  const pValue = report.verdict.sample_ratio_mismatch_p_value;
  warning.hidden = !(pValue !== null && pValue < SRM_ALARM_P_VALUE);
  warning.textContent = warning.hidden
    ? ""
    : `Sample-ratio mismatch: the traffic split differs from the configured weights (p = ${pValue.toExponential(1)}). Check the routing before trusting the verdict.`;
}

function renderTable(report, variants) {
  const { probability_best: probabilityBest, expected_loss: expectedLoss } = report.verdict;
  const rows = variants.map((item) => {
    const row = document.createElement("tr");
    const interval = item.up_rate_interval;
    // Each cell: its text, or [text, detail] where the detail goes on a second, smaller line.
    const cells = [
      item.variant,
      formatPercent(item.traffic_share, 1),
      String(item.impressions),
      String(item.up),
      String(item.down),
      [
        item.up_rate === null ? "no votes" : formatPercent(item.up_rate, 1),
        `${formatPercent(interval.low, 1)}–${formatPercent(interval.high, 1)}`,
      ],
      formatPercent(probabilityBest[item.variant], 1),
      formatPercent(expectedLoss[item.variant], 2),
      formatMs(item.latency_ms.p50),
      formatMs(item.latency_ms.p95),
      [formatPercent(item.error_rate, 1), `${item.errors} of ${item.requests}`],
    ];
    cells.forEach((content, index) => {
      const cell = document.createElement(index === 0 ? "th" : "td");
      if (index === 0) cell.scope = "row";
      const [text, detail] = Array.isArray(content) ? content : [content];
      cell.textContent = text;
      if (detail) {
        const line = document.createElement("span");
        line.className = "cell-detail";
        line.textContent = detail;
        cell.append(line);
      }
      row.append(cell);
    });
    row.dataset.variant = item.variant;
    return row;
  });
  document.querySelector("#stats-table tbody").replaceChildren(...rows);
  const pValue = report.verdict.sample_ratio_mismatch_p_value;
  document.getElementById("srm-value").textContent =
    pValue === null ? "not tested (needs two weighted variants)" : formatNumber(pValue, 4);
}

// ----- by category -----

/** A category's decision in a few words (the API decides; the page only words it). */
function categoryDecision(verdict) {
  switch (verdict.decision) {
    case "winner":
      return `Variant ${verdict.leader} wins`;
    case "too_close":
      return `Too close (variant ${verdict.leader} leads)`;
    case "no_lift":
      return "No lift";
    case "too_few_votes":
      return "Too few votes";
    default:
      return "One variant";
  }
}

function renderCategories(report, variants) {
  const section = document.getElementById("category-section");
  const note = document.getElementById("category-mismatch");
  // An API from before the verdict by category sends none: show nothing rather than guess.
  const categories = Array.isArray(report.by_category) ? report.by_category : [];
  section.hidden = categories.length === 0;
  const names = variants.map((item) => item.variant);
  const { min_votes_per_variant: minVotes, decision_probability: decisionProbability } = report.verdict;
  document.getElementById("category-hint").textContent =
    `The verdict's rule on each news category's votes alone: at least ${minVotes} votes per variant in the category, then a P(best) of ${formatPercent(decisionProbability)} decides. The category is the classifier's label; "uncategorised" where it gave none.`;

  const head = document.createElement("tr");
  const headings = ["Category", ...names.flatMap((name) => [`${name} votes`, `${name} up-rate`, `${name} P(best)`]), "Decision"];
  for (const text of headings) {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = text;
    head.append(cell);
  }
  const rows = categories.map((category) => {
    const row = document.createElement("tr");
    row.dataset.category = category.category;
    const label = document.createElement("th");
    label.scope = "row";
    label.textContent = category.category;
    row.append(label);
    for (const name of names) {
      const counts = category.variants.find((item) => item.variant === name) ?? { up: 0, down: 0, up_rate: null };
      const probability = category.verdict.probability_best[name];
      for (const text of [
        String(counts.up + counts.down),
        counts.up_rate === null ? "no votes" : formatPercent(counts.up_rate, 1),
        probability === undefined ? "–" : formatPercent(probability, 1),
      ]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
    }
    const decision = document.createElement("td");
    decision.textContent = categoryDecision(category.verdict);
    if (category.disagrees_with_overall) {
      row.classList.add("disagrees");
      row.dataset.disagrees = "true";
      const turned = document.createElement("span");
      turned.className = "cell-detail turned";
      turned.textContent = `not variant ${report.verdict.leader}, the overall leader`;
      decision.append(turned);
    }
    row.append(decision);
    return row;
  });
  const table = document.getElementById("category-table");
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...rows);

  // Where a category's winner is not the overall leader, say so next to the verdict.
  const turned = categories.filter((category) => category.disagrees_with_overall);
  note.hidden = turned.length === 0;
  note.textContent = note.hidden
    ? ""
    : `Not every category agrees: ${turned
        .map(
          (category) =>
            `in ${category.category}, variant ${category.verdict.leader} wins (P(best) ${formatPercent(category.verdict.probability_best[category.verdict.leader], 1)})`,
        )
        .join("; ")}, while variant ${report.verdict.leader} leads overall. See "By category" below.`;
}

// ----- charts -----

function chartsAvailable() {
  const available = typeof window.Chart === "function";
  document.getElementById("charts-unavailable").hidden = available;
  document.querySelector(".charts").hidden = !available;
  return available;
}

function drawChart(id, config) {
  charts.get(id)?.destroy();
  const chart = new window.Chart(document.getElementById(id), {
    ...config,
    options: {
      animation: false,
      maintainAspectRatio: false,
      responsive: true,
      ...config.options,
      plugins: { legend: { display: false }, ...config.options?.plugins },
    },
  });
  charts.set(id, chart);
}

function colour(index, alpha = 1) {
  const hex = VARIANT_COLOURS[index % VARIANT_COLOURS.length];
  if (alpha === 1) return hex;
  const [r, g, b] = [1, 3, 5].map((start) => Number.parseInt(hex.slice(start, start + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function percentAxis(max = 1) {
  const digits = max < 0.1 ? 1 : 0; // small ranges need a decimal, or ticks repeat
  return { min: 0, max, ticks: { callback: (value) => formatPercent(value, digits) } };
}

function renderCharts(report, variants) {
  if (!chartsAvailable()) return;
  const setup = chartSetup(variants);
  drawTrafficChart(variants, setup);
  drawUpRateChart(variants, setup);
  drawBestChart(variants, setup, report.verdict.probability_best);
  drawLossChart(variants, setup, report.verdict.expected_loss);
  drawLatencyChart(variants, setup);
  drawErrorsChart(variants, setup);
}

/** What every per-variant chart shares: its labels, its colours and a percent tooltip. */
function chartSetup(variants) {
  return {
    labels: variants.map((item) => `Variant ${item.variant}`),
    colours: variants.map((_, index) => colour(index)),
    percentTooltip: {
      tooltip: { callbacks: { label: (context) => formatPercent(context.parsed.y ?? context.parsed, 1) } },
    },
  };
}

/** Each variant's share of the traffic, as a doughnut. */
function drawTrafficChart(variants, { labels, colours }) {
  drawChart("chart-traffic", {
    type: "doughnut",
    data: { labels, datasets: [{ data: variants.map((item) => item.traffic_share), backgroundColor: colours }] },
    options: {
      plugins: {
        legend: { display: true, position: "bottom" },
        tooltip: { callbacks: { label: (context) => `${context.label}: ${formatPercent(context.parsed, 1)}` } },
      },
    },
  });
}

/** Each variant's up-rate: its 95% credible interval as a floating bar, the observed rate as a marker. */
function drawUpRateChart(variants, { labels, colours }) {
  drawChart("chart-uprate", {
    type: "bar",
    data: {
      labels,
      datasets: [
        {
          label: "95% credible interval",
          data: variants.map((item) => [item.up_rate_interval.low, item.up_rate_interval.high]),
          backgroundColor: variants.map((_, index) => colour(index, 0.3)),
          borderColor: colours,
          borderWidth: 1,
          barPercentage: 0.5,
        },
        {
          type: "line",
          label: "Observed up-rate",
          clip: false, // a 100% marker sits on the top edge
          data: variants.map((item) => item.up_rate),
          showLine: false,
          pointStyle: "rectRot",
          pointRadius: 7,
          pointBackgroundColor: colours,
          pointBorderColor: "#ffffff",
        },
      ],
    },
    options: {
      scales: { y: percentAxis() },
      plugins: {
        legend: { display: true, position: "bottom", labels: { usePointStyle: true } },
        tooltip: {
          callbacks: {
            label: (context) => {
              const raw = context.raw;
              return Array.isArray(raw)
                ? `95% interval: ${formatPercent(raw[0], 1)}–${formatPercent(raw[1], 1)}`
                : `Observed: ${formatPercent(raw, 1)}`;
            },
          },
        },
      },
    },
  });
}

/** Each variant's probability of being best. */
function drawBestChart(variants, { labels, colours, percentTooltip }, probabilityBest) {
  drawChart("chart-best", {
    type: "bar",
    data: { labels, datasets: [{ data: variants.map((item) => probabilityBest[item.variant] ?? 0), backgroundColor: colours }] },
    options: { scales: { y: percentAxis() }, plugins: percentTooltip },
  });
}

/** The up-rate each variant risks losing if chosen (its expected loss). */
function drawLossChart(variants, { labels, colours }, expectedLoss) {
  drawChart("chart-loss", {
    type: "bar",
    data: { labels, datasets: [{ data: variants.map((item) => expectedLoss[item.variant] ?? 0), backgroundColor: colours }] },
    options: {
      scales: { y: { min: 0, ticks: { callback: (value) => formatPercent(value, 1) } } },
      plugins: { tooltip: { callbacks: { label: (context) => formatPercent(context.parsed.y, 2) } } },
    },
  });
}

/** Each variant's p50 and p95 latency. */
function drawLatencyChart(variants, { labels }) {
  drawChart("chart-latency", {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "p50", data: variants.map((item) => item.latency_ms.p50), backgroundColor: "#457b9d" },
        { label: "p95", data: variants.map((item) => item.latency_ms.p95), backgroundColor: "#a8dadc" },
      ],
    },
    options: {
      scales: { y: { min: 0, ticks: { callback: (value) => formatMs(value) } } },
      plugins: {
        legend: { display: true, position: "bottom" },
        tooltip: { callbacks: { label: (context) => `${context.dataset.label}: ${formatMs(context.parsed.y)}` } },
      },
    },
  });
}

/** Each variant's error rate, on an axis of at least 5%. */
function drawErrorsChart(variants, { labels, colours, percentTooltip }) {
  drawChart("chart-errors", {
    type: "bar",
    data: { labels, datasets: [{ data: variants.map((item) => item.error_rate), backgroundColor: colours }] },
    options: {
      scales: { y: percentAxis(Math.max(0.05, ...variants.map((item) => item.error_rate))) },
      plugins: percentTooltip,
    },
  });
}

// ----- votes over time -----

/**
 * Votes per time slot, derived from /api/stats alone: `since` filters by when a headline was
 * generated, so the difference between two cumulative reports is the votes cast on headlines
 * generated in that slot. One request per slot boundary.
 */
async function renderTimeline(period, report, thisLoad) {
  const note = document.getElementById("votes-note");
  const { buckets, slotSeconds } = TIMELINES[period] ?? TIMELINES[""];
  // Slots on round boundaries (UTC multiples of the slot); the last one holds "now".
  const slotMs = slotSeconds * 1000;
  const end = Math.ceil(Date.now() / slotMs) * slotMs;
  const starts = Array.from({ length: buckets }, (_, index) => new Date(end - (buckets - index) * slotMs));
  let cumulative;
  try {
    cumulative = await Promise.all(starts.map((start) => fetchStats(start)));
  } catch (error) {
    if (thisLoad !== loadCounter) return;
    charts.get("chart-votes")?.destroy();
    charts.delete("chart-votes");
    note.textContent = `Votes over time could not be loaded: ${error instanceof ApiError ? error.message : "page error"}`;
    renderTimelineTable([], [], []);
    return;
  }
  if (thisLoad !== loadCounter) return;

  const names = [...report.variants].map((item) => item.variant).sort();
  const totals = (stats, name) => {
    const item = stats.variants.find((candidate) => candidate.variant === name);
    return item ? { up: item.up, down: item.down } : { up: 0, down: 0 };
  };
  // Slot i holds what stats(since=start_i) has and stats(since=start_{i+1}) no longer has.
  const slots = starts.map((start, index) =>
    Object.fromEntries(
      names.map((name) => {
        const from = totals(cumulative[index], name);
        const to = index + 1 < buckets ? totals(cumulative[index + 1], name) : { up: 0, down: 0 };
        return [name, { up: from.up - to.up, down: from.down - to.down }];
      }),
    ),
  );
  const labels = starts.map((start) => slotLabel(start, slotSeconds));
  note.textContent = `Votes on headlines generated in each ${slotName(slotSeconds)} slot${period ? "" : " of the last 24 hours"}, by variant (solid = up votes, light = down votes).`;
  renderTimelineTable(names, labels, slots);

  if (!chartsAvailable()) return;
  drawChart("chart-votes", {
    type: "bar",
    data: {
      labels,
      datasets: names.flatMap((name, index) => [
        { label: `${name} up`, stack: name, data: slots.map((slot) => slot[name].up), backgroundColor: colour(index) },
        { label: `${name} down`, stack: name, data: slots.map((slot) => slot[name].down), backgroundColor: colour(index, 0.35) },
      ]),
    },
    options: {
      scales: { x: { stacked: true }, y: { stacked: true, min: 0, ticks: { precision: 0 } } },
      plugins: { legend: { display: true, position: "bottom" } },
    },
  });
}

function renderTimelineTable(names, labels, slots) {
  const head = document.createElement("tr");
  for (const text of ["Slot starting", ...names.flatMap((name) => [`${name} up`, `${name} down`])]) {
    const cell = document.createElement("th");
    cell.scope = "col";
    cell.textContent = text;
    head.append(cell);
  }
  const rows = slots.map((slot, index) => {
    const row = document.createElement("tr");
    const label = document.createElement("th");
    label.scope = "row";
    label.textContent = labels[index];
    row.append(label);
    for (const name of names) {
      for (const count of [slot[name].up, slot[name].down]) {
        const cell = document.createElement("td");
        cell.textContent = String(count);
        row.append(cell);
      }
    }
    return row;
  });
  const table = document.getElementById("votes-table");
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...rows);
}

function slotLabel(start, slotSeconds) {
  const options =
    slotSeconds >= 86400
      ? { weekday: "short", day: "numeric" }
      : { hour: "2-digit", minute: "2-digit" };
  return start.toLocaleString([], options);
}

function slotName(slotSeconds) {
  if (slotSeconds >= 86400) return `${slotSeconds / 86400}-day`;
  if (slotSeconds >= 3600) return `${slotSeconds / 3600}-hour`;
  return `${slotSeconds / 60}-minute`;
}
