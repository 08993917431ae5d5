// Messages per day for the last 30 days, by status, as an inline SVG drawn with DOM calls (no chart library).
import { api } from "./api.js";
import { day, inProgress } from "./format.js";
import { el, replace, svg } from "./dom.js";

const DAYS = 30;
const PAGE = 200; // the log's largest page
const MAX_PAGES = 10; // at most 2000 messages are read for the picture; the caption says when there were more
const ORDER = ["Delivered", "PartiallyDelivered", "Sent", "PartiallySent", "Undelivered", "Failed", "Expired",
               "Canceled", "Sending", "Queued", "Scheduled"];
const HEIGHT = 160; // drawn at the figure's own width, so its text stays at its size on a phone and on a desk
const TOP = 8;
const BOTTOM = 20;
const LEFT = 28;

/** The last 30 days as YYYY-MM-DD in the browser's time zone, oldest first. */
function lastDays(now = new Date()) {
  const days = [];
  for (let back = DAYS - 1; back >= 0; back -= 1) {
    const at = new Date(now.getFullYear(), now.getMonth(), now.getDate() - back);
    days.push(day(new Date(at.getTime() - at.getTimezoneOffset() * 60000)));
  }
  return days;
}

function localDay(iso) {
  const at = new Date(iso);
  return day(new Date(at.getTime() - at.getTimezoneOffset() * 60000));
}

async function countByDay(days) {
  const start = new Date(`${days[0]}T00:00`);
  const counts = new Map(days.map((each) => [each, new Map()]));
  let token;
  let pages = 0;
  do {
    const page = await api.messages({ Top: PAGE, Since: start.toISOString(), ContinuationToken: token });
    for (const entry of page.Results ?? []) {
      const perStatus = counts.get(localDay(entry.CreatedAt));
      if (perStatus) perStatus.set(entry.Status, (perStatus.get(entry.Status) ?? 0) + 1);
    }
    token = page.ContinuationToken;
    pages += 1;
  } while (token && pages < MAX_PAGES);
  return { counts, truncated: Boolean(token) };
}

function statusClass(status) {
  return `s-${String(status).toLowerCase()}`;
}

function draw(days, counts, width) {
  const totals = days.map((each) => [...counts.get(each).values()].reduce((a, b) => a + b, 0));
  const highest = Math.max(1, ...totals);
  const slot = (width - LEFT) / days.length;
  const scale = (HEIGHT - TOP - BOTTOM) / highest;
  const total = totals.reduce((a, b) => a + b, 0);
  const chart = svg("svg", { id: "daily-chart", viewBox: `0 0 ${width} ${HEIGHT}`, role: "img",
                             "aria-labelledby": "daily-chart-title" },
    svg("title", { id: "daily-chart-title" }, `Messages per day, last ${DAYS} days: ${total} in all`),
    svg("line", { x1: LEFT, y1: HEIGHT - BOTTOM, x2: width, y2: HEIGHT - BOTTOM, class: "axis" }),
    svg("text", { x: LEFT - 4, y: TOP + 8, class: "tick", "text-anchor": "end" }, String(highest)),
    svg("text", { x: LEFT - 4, y: HEIGHT - BOTTOM, class: "tick", "text-anchor": "end" }, "0"));
  days.forEach((each, position) => {
    const x = LEFT + position * slot + slot * 0.15;
    let y = HEIGHT - BOTTOM;
    const perStatus = counts.get(each);
    const statuses = [...perStatus.keys()].sort((a, b) => rank(a) - rank(b));
    for (const status of statuses) {
      const count = perStatus.get(status);
      const height = count * scale;
      y -= height;
      chart.append(svg("rect", { x: x.toFixed(1), y: y.toFixed(1), width: (slot * 0.7).toFixed(1),
                                 height: height.toFixed(1), class: statusClass(status),
                                 dataset: { day: each, status, count: String(count) } },
        svg("title", {}, `${each}: ${count} ${status}`)));
    }
    if ((days.length - 1 - position) % 7 === 0) { // today, and a week before it, and so on
      const last = position === days.length - 1; // today's label ends at the edge instead of running past it
      chart.append(svg("text", { x: (last ? width : x + slot * 0.35).toFixed(1), y: HEIGHT - 5, class: "tick",
                                 "text-anchor": last ? "end" : "middle" }, each.slice(5)));
    }
  });
  return chart;
}

function rank(status) {
  const found = ORDER.indexOf(status);
  return found === -1 ? ORDER.length : found;
}

function legend(counts) {
  const seen = new Set();
  for (const perStatus of counts.values()) for (const status of perStatus.keys()) seen.add(status);
  return el("ul", { class: "legend" }, [...seen].sort((a, b) => rank(a) - rank(b)).map((status) =>
    el("li", {}, el("span", { class: `swatch ${statusClass(status)}`, "aria-hidden": "true" }),
       inProgress(status) ? `${status} (not final yet)` : status)));
}

/** Draws the chart into ``figure``; failures are reported by the caller. */
export async function renderChart(figure) {
  const days = lastDays();
  const { counts, truncated } = await countByDay(days);
  const width = Math.max(300, Math.round(figure.getBoundingClientRect().width) || 600);
  replace(figure, draw(days, counts, width), el("figcaption", {},
    `Messages per day over the last ${DAYS} days, by status${truncated ? ` (the newest ${PAGE * MAX_PAGES})` : ""}.`,
    legend(counts)));
}
