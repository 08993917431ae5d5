// The webhook (#/webhook): GET/PUT/DELETE /api/webhook, the failed events with Retry. Rotating the secret is
// registering the same URL again; a secret is shown once, right after, and never again (the API keeps it hidden).
import { api } from "./api.js";
import { el, replace, rowsOr } from "./dom.js";
import { time } from "./format.js";
import { clearError, report } from "./notice.js";

export function renderWebhook(view) {
  let stopped = false;
  const url = el("input", { id: "webhook-url", type: "url", autocomplete: "off", placeholder: "https://…",
                            required: true });
  const secret = el("div", { id: "webhook-secret", role: "status", hidden: true });
  const notice = el("p", { id: "webhook-notice", role: "status" });
  const failed = el("tbody");
  const rotate = el("button", { id: "webhook-rotate", type: "button", class: "secondary" }, "Rotate secret");
  const remove = el("button", { id: "webhook-delete", type: "button", class: "danger" }, "Delete webhook");

  function showSecret(registration) {
    replace(secret, el("p", {}, "Signing secret for ", registration.Url, ":"),
      el("code", { class: "secret" }, registration.Secret ?? ""),
      el("p", { class: "warning" }, "Copy it now: it will not be shown again. The previous secret keeps signing "
        + "beside it for 24 hours."));
    secret.hidden = false;
  }

  async function run(work) {
    clearError();
    try {
      await work();
    } catch (error) {
      report(error);
    }
  }

  async function loadEndpoint() {
    try {
      const webhook = await api.webhook();
      if (stopped) return;
      url.value = webhook.Url ?? "";
      rotate.disabled = remove.disabled = !webhook.Url;
    } catch (error) {
      if (stopped) return;
      if (error.status === 404) {
        rotate.disabled = remove.disabled = true;
        notice.textContent = "No webhook is registered.";
      } else report(error);
    }
  }

  async function loadFailed() {
    try {
      const events = (await api.failedEvents()).Events ?? [];
      if (stopped) return;
      replace(failed, rowsOr(events, failedRow, 6, "No failed events."));
    } catch (error) {
      if (!stopped) report(error);
    }
  }

  function failedRow(event) {
    const retry = el("button", { type: "button", class: "retry secondary", "aria-label": `Retry ${event.Id}` },
                     "Retry");
    retry.addEventListener("click", () => run(async () => {
      retry.disabled = true;
      const again = await api.retryEvent(event.Id);
      notice.textContent = `${again.Id} is ${again.Status}: it is being sent again.`;
      await loadFailed();
    }).finally(() => { retry.disabled = false; }));
    return el("tr", { dataset: { eventId: event.Id } },
      el("td", {}, event.Type), el("td", {}, event.LastError ?? ""), el("td", {}, String(event.Attempts)),
      el("td", {}, time(event.FailedAt)),
      el("td", {}, event.CommId ? el("a", { href: `#/messages/${encodeURIComponent(event.CommId)}` }, "Journey") : ""),
      el("td", {}, retry));
  }

  async function register(address) {
    const registration = await api.setWebhook(address);
    showSecret(registration);
    notice.textContent = `Events are posted to ${registration.Url}.`;
    url.value = registration.Url ?? address;
    rotate.disabled = remove.disabled = false;
  }

  rotate.addEventListener("click", () => run(() => register(url.value.trim())));
  remove.addEventListener("click", () => run(async () => {
    const removed = await api.deleteWebhook();
    secret.hidden = true;
    notice.textContent = `Webhook ${removed.Url} removed: no more events are posted.`;
    url.value = "";
    rotate.disabled = remove.disabled = true;
  }));

  replace(view, el("section", { id: "webhook-view", "aria-labelledby": "webhook-title" },
    el("h2", { id: "webhook-title" }, "Webhook"),
    el("form", { class: "inline", onsubmit: (event) => { event.preventDefault(); run(() => register(url.value.trim())); } },
      el("label", { for: "webhook-url" }, "Endpoint URL"), url,
      el("button", { id: "webhook-save", type: "submit" }, "Save")),
    el("div", { class: "actions" }, rotate, remove),
    secret, notice,
    el("h3", {}, "Failed events"),
    el("div", { class: "table-wrap" }, el("table", { id: "webhook-failed" },
      el("caption", { class: "visually-hidden" }, "Webhook events whose retries ended without the endpoint taking them"),
      el("thead", {}, el("tr", {}, ["Type", "Last error", "Attempts", "Failed", "Message", ""].map(
        (name) => el("th", { scope: "col" }, name)))),
      failed))));
  loadEndpoint();
  loadFailed();
  return () => { stopped = true; };
}
