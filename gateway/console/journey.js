// One communication's journey (#/messages/<CommId>): timeline, recipients (full numbers), conversation, webhook
// events, and Cancel / Resend where the API allows them. Refreshed every 5 s while open, redrawn only on change.
import { api } from "./api.js";
import { el, replace, rowsOr } from "./dom.js";
import { explain } from "./error-codes.js";
import { badge, inProgress, time } from "./format.js";
import { clearError, report } from "./notice.js";

const REFRESH_MS = 5000;
const RESENDABLE = new Set(["Failed", "Undelivered", "Expired"]);
const FINAL_KIND = { Delivered: "delivered", Undelivered: "undelivered", Failed: "failed", OptedOut: "opted-out",
                     Canceled: "canceled", Expired: "expired" };

function who(recipient) {
  return recipient.Name ? `${recipient.Name} (${recipient.PhoneNumber})` : recipient.PhoneNumber ?? "a recipient";
}

function timeline(message, events) {
  const items = [{ kind: "accepted", at: message.CreatedAt, text: `Accepted (reference ${message.Reference})` }];
  if (message.SendAt) items.push({ kind: "scheduled", at: message.SendAt, text: "Scheduled to send" });
  else items.push({ kind: "queued", at: message.CreatedAt, text: "Queued for delivery" });
  for (const recipient of message.Recipients ?? []) {
    if (recipient.ProviderMessageId) {
      items.push({ kind: "sent", at: recipient.UpdatedAt,
                   text: `Sent to ${who(recipient)}; provider id ${recipient.ProviderMessageId}` });
    }
    const kind = FINAL_KIND[recipient.Status];
    if (kind) {
      const reason = recipient.ErrorCode ? `: ${recipient.ErrorCode} ${explain(recipient.ErrorCode)}` : "";
      items.push({ kind, at: recipient.ReceiptAt ?? recipient.UpdatedAt,
                   text: `${recipient.Status} for ${who(recipient)}${reason}`.trim() });
    }
  }
  for (const reply of message.Replies ?? []) {
    items.push({ kind: "reply", at: reply.ReceivedAt, text: `Reply from ${reply.From}` });
  }
  for (const event of events) {
    items.push({ kind: "webhook", at: event.CreatedAt,
                 text: `Webhook ${event.Type}: ${event.Status} after ${event.Attempts} attempt(s)` });
  }
  items.sort((a, b) => String(a.at ?? "").localeCompare(String(b.at ?? "")));
  return el("ol", { id: "timeline", class: "timeline" },
    items.map((item) => el("li", { dataset: { kind: item.kind } }, time(item.at), " ", item.text)));
}

function recipientsTable(message) {
  return el("div", { class: "table-wrap" }, el("table", { id: "journey-recipients" },
    el("caption", {}, "Recipients"),
    el("thead", {}, el("tr", {}, ["Number", "Status", "Provider id", "Error", "Updated"].map(
      (name) => el("th", { scope: "col" }, name)))),
    el("tbody", {}, (message.Recipients ?? []).map((recipient) => el("tr", {
      dataset: { recipientId: recipient.RecipientId } },
      el("td", { class: "number" }, recipient.PhoneNumber ?? "", recipient.Name ? ` (${recipient.Name})` : ""),
      el("td", { class: "status" }, badge(recipient.Status)),
      el("td", { class: "provider-id" }, recipient.ProviderMessageId ?? ""),
      el("td", { class: "error" }, recipient.ErrorCode ?? "",
         recipient.ErrorCode || recipient.ErrorMessage ? el("span", { class: "explained" },
           explain(recipient.ErrorCode) || recipient.ErrorMessage || "") : null),
      el("td", {}, time(recipient.ReceiptAt ?? recipient.UpdatedAt)))))));
}

function conversation(message) {
  const bubbles = [{ kind: "outbound", at: message.CreatedAt, from: message.From?.PhoneNumber ?? message.From?.Name,
                     body: message.MessageBody ?? "" },
                   ...(message.Replies ?? []).map((reply) => ({ kind: "reply", at: reply.ReceivedAt,
                                                                from: reply.From, body: reply.Body ?? "" }))];
  return el("section", { id: "conversation", "aria-labelledby": "conversation-title" },
    el("h3", { id: "conversation-title" }, "Conversation"),
    bubbles.map((bubble) => el("div", { class: `message ${bubble.kind}` },
      el("p", { class: "body" }, bubble.body),
      el("p", { class: "meta" }, bubble.kind === "outbound" ? "Sent" : `From ${bubble.from}`, " · ", time(bubble.at)))),
    (message.Replies ?? []).length ? null : el("p", { class: "muted" }, "No replies yet."));
}

function eventsTable(events) {
  return el("div", { class: "table-wrap" }, el("table", { id: "journey-events" },
    el("caption", {}, "Webhook events"),
    el("thead", {}, el("tr", {}, ["Type", "Status", "Attempts", "Last error", "Created", "Id"].map(
      (name) => el("th", { scope: "col" }, name)))),
    el("tbody", {}, rowsOr(events, (event) => el("tr", { dataset: { eventId: event.Id } },
      el("td", {}, event.Type), el("td", {}, badge(event.Status)), el("td", {}, String(event.Attempts)),
      el("td", {}, event.LastError ?? ""), el("td", {}, time(event.CreatedAt)), el("td", { class: "mono" }, event.Id)),
      6, "No webhook events (none registered, or none yet)."))));
}

function cancelable(message) {
  return message.Status === "Scheduled" || (message.PendingCount ?? 0) > 0;
}

function resendable(message) {
  return (message.Recipients ?? []).some((recipient) => RESENDABLE.has(recipient.Status));
}

export function renderJourney(view, commId) {
  let timer = null;
  let stopped = false;
  let shown = "";
  const notice = el("p", { id: "journey-notice", role: "status" });

  async function act(button, work) {
    button.disabled = true;
    clearError();
    try {
      notice.replaceChildren(...[await work()].flat());
      await load(true);
    } catch (error) {
      report(error);
      button.disabled = false;
    }
  }

  function actions(message) {
    const buttons = [];
    if (cancelable(message)) {
      const cancel = el("button", { id: "cancel", type: "button", class: "danger" }, "Cancel");
      cancel.addEventListener("click", () => act(cancel, async () => {
        const done = await api.cancel(commId);
        return `Canceled ${done.CanceledCount} recipient${done.CanceledCount === 1 ? "" : "s"}. ${done.Message ?? ""}`;
      }));
      buttons.push(cancel);
    }
    if (resendable(message)) {
      const resend = el("button", { id: "resend", type: "button" }, "Resend to those not reached");
      resend.addEventListener("click", () => act(resend, async () => {
        const sent = await api.resend(commId);
        return ["Resent as ", el("a", { href: `#/messages/${encodeURIComponent(sent.CommId)}` },
                                 sent.Reference ?? sent.CommId), "."];
      }));
      buttons.push(resend);
    }
    return el("div", { class: "actions" }, buttons);
  }

  function draw(message, events) {
    const facts = [["CommId", message.CommId], ["Reference", message.Reference],
                   ["From", [message.From?.Name, message.From?.PhoneNumber].filter(Boolean).join(" ")],
                   ["Created", time(message.CreatedAt)], ["Segments", `${message.Segments} (${message.Encoding})`]];
    if (message.ResentFrom) {
      facts.push(["Resends", el("a", { href: `#/messages/${encodeURIComponent(message.ResentFrom)}` },
                                message.ResentFrom)]);
    }
    for (const each of message.ResentAs ?? []) {
      facts.push(["Resent as", el("a", { href: `#/messages/${encodeURIComponent(each)}` }, each)]);
    }
    replace(view, el("section", { id: "journey", "aria-labelledby": "journey-title" },
      el("p", {}, el("a", { href: "#/messages" }, "← All messages")),
      el("h2", { id: "journey-title" }, "Message ", message.Reference ?? ""),
      el("p", {}, "Status: ", el("strong", { id: "journey-status" }, message.Status)),
      el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value ?? "")])),
      actions(message), notice,
      el("h3", {}, "Timeline"), timeline(message, events),
      recipientsTable(message),
      conversation(message),
      eventsTable(events)));
  }

  function refresh() { // a hidden tab asks nothing; it looks again when the next tick finds it shown
    if (document.hidden) timer = setTimeout(refresh, REFRESH_MS);
    else load();
  }

  async function load(force = false) {
    clearTimeout(timer);
    try {
      const [message, events] = await Promise.all([api.message(commId), api.messageEvents(commId)]);
      if (stopped) return;
      const now = JSON.stringify([message, events.Events]);
      if (force || now !== shown) {
        shown = now;
        draw(message, events.Events ?? []);
      }
      // Receipts come while it is in progress; replies may come later, so a finished one is still looked at.
      const soon = inProgress(message.Status) || message.ReplyIsAllowed || message.ReplyIsRequired;
      timer = setTimeout(refresh, soon ? REFRESH_MS : REFRESH_MS * 3);
    } catch (error) {
      if (stopped) return;
      report(error);
      if (error.status === 404) {
        replace(view, el("section", { id: "journey-missing" }, el("p", {}, "No message with that CommId for this key. ",
          el("a", { href: "#/messages" }, "All messages"))));
      }
    }
  }

  replace(view, el("section", { id: "journey-loading" }, el("p", { class: "muted" }, "Loading…")));
  load();
  return () => { stopped = true; clearTimeout(timer); };
}
