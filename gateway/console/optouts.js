// The opt-out list (#/optouts): GET, POST and DELETE /api/optouts. Numbers are shown masked.
import { api } from "./api.js";
import { el, replace, rowsOr } from "./dom.js";
import { mask, time } from "./format.js";
import { clearError, report } from "./notice.js";

export function renderOptOuts(view) {
  let stopped = false;
  const body = el("tbody");
  const notice = el("p", { id: "optout-notice", role: "status" });
  const input = el("input", { id: "optout-number", type: "tel", autocomplete: "off", placeholder: "+14155550123",
                              required: true });

  async function load() {
    try {
      const list = (await api.optOuts()).OptOuts ?? [];
      if (stopped) return;
      replace(body, rowsOr(list, row, 5, "No numbers are opted out."));
    } catch (error) {
      if (!stopped) report(error);
    }
  }

  function row(entry) {
    const remove = el("button", { type: "button", class: "optout-remove secondary",
                                  "aria-label": `Remove ${mask(entry.PhoneNumber)} from the opt-out list` }, "Remove");
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      clearError();
      try {
        await api.removeOptOut(entry.PhoneNumber);
        notice.textContent = `${mask(entry.PhoneNumber)} removed: sends reach it again.`;
        await load();
      } catch (error) {
        report(error);
        remove.disabled = false;
      }
    });
    return el("tr", { dataset: { number: entry.PhoneNumber } },
      el("td", { class: "number", title: "Masked: the last 4 digits" }, mask(entry.PhoneNumber)),
      el("td", {}, entry.Reason ?? ""), el("td", {}, entry.Source ?? ""), el("td", {}, time(entry.At)),
      el("td", {}, remove));
  }

  async function add(event) {
    event.preventDefault();
    const number = input.value.trim();
    if (!number) return;
    clearError();
    try {
      const added = await api.addOptOut(number);
      input.value = "";
      notice.textContent = `${mask(added.PhoneNumber)} added: sends to it end OptedOut.`;
      await load();
    } catch (error) {
      report(error);
    }
  }

  replace(view, el("section", { id: "optouts-view", "aria-labelledby": "optouts-title" },
    el("h2", { id: "optouts-title" }, "Opt-outs"),
    el("p", { class: "muted" }, "Numbers a send will not reach: STOP replies, provider refusals and numbers added here."),
    el("form", { class: "inline", onsubmit: add },
      el("label", { for: "optout-number" }, "Number to opt out"), input,
      el("button", { id: "optout-add", type: "submit" }, "Add")),
    notice,
    el("div", { class: "table-wrap" }, el("table", { id: "optouts" },
      el("caption", { class: "visually-hidden" }, "Opted-out numbers"),
      el("thead", {}, el("tr", {}, ["Number", "Reason", "Source", "Added", ""].map(
        (name) => el("th", { scope: "col" }, name)))),
      body))));
  load();
  return () => { stopped = true; };
}
