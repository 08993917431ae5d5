// The message log (#/messages): GET /api/sms with filters, paged by ContinuationToken, refreshed while open.
import { api } from "./api.js";
import { renderChart } from "./chart.js";
import { el, replace, rowsOr } from "./dom.js";
import { badge, inProgress, time } from "./format.js";
import { clearError, report } from "./notice.js";

const STATUSES = ["Scheduled", "Queued", "Sending", "Sent", "PartiallySent", "Failed", "Delivered",
                  "PartiallyDelivered", "Undelivered", "Canceled", "Expired"];
const REFRESH_MS = 5000;
const TOP = 50;

// Kept across visits to the view (opening a journey and coming back keeps the filters and the page), forgotten at
// sign-out: a page's token belongs to the licensee of the key that asked for it.
const fresh = () => ({ filters: { status: "", since: "", until: "", phone: "" }, tokens: [undefined] });
let state = fresh();

export function forgetMessages() {
  state = fresh();
}

function localStart(date, days = 0) {
  if (!date) return undefined;
  const at = new Date(`${date}T00:00`);
  at.setDate(at.getDate() + days);
  return at.toISOString();
}

function query() {
  const { status, since, until, phone } = state.filters;
  return { Top: TOP, Status: status, Since: localStart(since), Until: localStart(until, 1),
           PhoneNumber: phone.trim(), ContinuationToken: state.tokens.at(-1) };
}

function recipients(entry) {
  const parts = [`${entry.RecipientCount}`];
  if (entry.DeliveredCount) parts.push(`${entry.DeliveredCount} delivered`);
  if (entry.UndeliveredCount) parts.push(`${entry.UndeliveredCount} undelivered`);
  if (entry.FailedCount) parts.push(`${entry.FailedCount} not sent`);
  return parts.join(" · ");
}

function open(commId) {
  location.hash = `#/messages/${encodeURIComponent(commId)}`;
}

function row(entry) {
  const link = el("a", { class: "open-journey", href: `#/messages/${encodeURIComponent(entry.CommId)}` },
                  entry.CommId);
  return el("tr", { tabindex: "0", dataset: { commId: entry.CommId }, title: "Enter or click: its journey",
                    onclick: (event) => { if (!event.target.closest("a")) open(entry.CommId); },
                    onkeydown: (event) => { if (event.key === "Enter" && event.target === event.currentTarget) {
                      open(entry.CommId);
                    } } },
    el("td", { class: "status" }, badge(entry.Status)),
    el("td", { class: "recipients" }, recipients(entry)),
    el("td", { class: "segments", title: entry.Encoding ?? "" }, String(entry.Segments ?? "")),
    el("td", { class: "created" }, time(entry.CreatedAt)),
    el("td", { class: "reference" }, entry.Reference ?? ""),
    el("td", { class: "comm-id" }, link));
}

function filterForm(onApply) {
  const { status, since, until, phone } = state.filters;
  const field = (id, label, input) => el("div", { class: "field" }, el("label", { for: id }, label), input);
  return el("form", { class: "filters", "aria-label": "Filter messages",
                      onsubmit: (event) => { event.preventDefault(); onApply(); } },
    field("filter-status", "Status", el("select", { id: "filter-status" },
      el("option", { value: "" }, "All"),
      STATUSES.map((each) => el("option", { value: each, selected: each === status }, each)))),
    field("filter-since", "From", el("input", { id: "filter-since", type: "date", value: since })),
    field("filter-until", "To", el("input", { id: "filter-until", type: "date", value: until })),
    field("filter-phone", "Phone number", el("input", { id: "filter-phone", type: "tel", value: phone,
                                                        placeholder: "+14155550123", autocomplete: "off" })),
    el("div", { class: "actions" },
      el("button", { id: "filter-apply", type: "submit" }, "Apply"),
      el("button", { id: "refresh", type: "button", class: "secondary", onclick: () => onApply(true) },
         "Refresh")));
}

// A redraw replaces every row: the keyboard's place (a row, or the link in it) is found again by its CommId, so a
// refresh never drops the focus to the page.
function focusedPlace(body) {
  const active = document.activeElement;
  const focusedRow = active?.closest?.("tr[data-comm-id]");
  if (!focusedRow || !body.contains(focusedRow)) return null;
  return { commId: focusedRow.dataset.commId, onLink: active !== focusedRow };
}

function restoreFocus(body, place) {
  if (!place) return;
  const again = [...body.querySelectorAll("tr[data-comm-id]")].find((each) => each.dataset.commId === place.commId);
  (place.onLink ? again?.querySelector("a.open-journey") : again)?.focus();
}

export function renderMessages(view) {
  let timer = null;
  let stopped = false;
  const body = el("tbody");
  const summary = el("p", { class: "muted", "aria-live": "polite" });
  const first = el("button", { id: "page-first", type: "button", class: "secondary" }, "First page");
  const next = el("button", { id: "page-next", type: "button", class: "secondary" }, "Next page");
  const figure = el("figure", { class: "chart" }, el("p", { class: "muted" }, "Drawing the last 30 days…"));

  async function load() {
    clearTimeout(timer);
    try {
      const page = await api.messages(query());
      if (stopped) return;
      const entries = page.Results ?? [];
      const place = focusedPlace(body);
      replace(body, rowsOr(entries, row, 6, "No messages match."));
      restoreFocus(body, place);
      state.next = page.ContinuationToken;
      next.disabled = !page.ContinuationToken;
      first.disabled = state.tokens.length === 1;
      const open = entries.some((entry) => inProgress(entry.Status));
      summary.textContent = `Page ${state.tokens.length}: ${entries.length} message${entries.length === 1 ? "" : "s"}`
        + (open ? "; refreshing every 5 seconds while some are in progress." : ".");
      if (open) timer = setTimeout(refresh, REFRESH_MS);
    } catch (error) {
      if (!stopped) report(error);
    }
  }

  function refresh() { // a hidden tab asks nothing; it looks again when the next tick finds it shown
    if (document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    else load();
  }

  function chart() {
    renderChart(figure).catch((error) => { if (!stopped) report(error); });
  }

  function apply(refreshOnly = false) {
    if (!refreshOnly) {
      state.filters = { status: view.querySelector("#filter-status").value,
                        since: view.querySelector("#filter-since").value,
                        until: view.querySelector("#filter-until").value,
                        phone: view.querySelector("#filter-phone").value };
      state.tokens = [undefined];
    }
    clearError();
    load();
    chart();
  }

  next.addEventListener("click", () => { state.tokens.push(state.next); load(); });
  first.addEventListener("click", () => { state.tokens = [undefined]; load(); });

  replace(view, el("section", { id: "messages-view", "aria-labelledby": "messages-title" },
    el("h2", { id: "messages-title" }, "Messages"),
    figure,
    filterForm(apply),
    el("div", { class: "table-wrap" },
      el("table", { id: "messages" },
        el("caption", { class: "visually-hidden" }, "Messages, newest first. Enter on a row opens its journey."),
        el("thead", {}, el("tr", {}, ["Status", "Recipients", "Segments", "Created", "Reference", "CommId"].map(
          (name) => el("th", { scope: "col" }, name)))),
        body)),
    summary,
    el("div", { class: "paging" }, first, next)));
  load();
  chart();
  return () => { stopped = true; clearTimeout(timer); };
}
