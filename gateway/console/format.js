// How values are shown: masked numbers, local times with UTC on hover, statuses as badges.
import { el } from "./dom.js";

export function mask(number) {
  if (!number) return "";
  const digits = String(number);
  return digits.length <= 4 ? digits : `•••${digits.slice(-4)}`;
}

const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function time(iso) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return el("span", {}, iso);
  return el("time", { datetime: at.toISOString(), title: `${at.toISOString().replace(".000", "")} (UTC)` },
            LOCAL.format(at));
}

export function badge(status) {
  return el("span", { class: `badge ${String(status ?? "").toLowerCase()}` }, status ?? "—");
}

const OPEN = new Set(["Scheduled", "Queued", "Sending", "Sent", "PartiallySent", "Pending"]);

/** A communication (or recipient) whose status may still change: the log refreshes itself while one is listed. */
export function inProgress(status) {
  return OPEN.has(status);
}

export function day(date) {
  return date.toISOString().slice(0, 10);
}
