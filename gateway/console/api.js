// Every call to the gateway's API: the key as a Bearer header, JSON both ways, errors as ApiFailure.
import { apiKey } from "./session.js";

export class ApiFailure extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function call(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json", Authorization: `Bearer ${apiKey() ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body),
                                  cache: "no-store", credentials: "omit" });
  } catch {
    throw new ApiFailure(0, "The gateway did not answer: check the connection and try again.", "Network");
  }
  const text = await response.text();
  const data = text ? safeJson(text) : {};
  if (!response.ok) {
    const status = data?.ResponseStatus ?? {};
    throw new ApiFailure(response.status, status.Message || `${response.status} ${response.statusText}`,
                         status.ErrorCode);
  }
  return data;
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

const path = (value) => encodeURIComponent(value);

export const api = {
  messages: (query) => call("GET", "/api/sms", { query }),
  message: (commId) => call("GET", `/api/sms/${path(commId)}`),
  messageEvents: (commId) => call("GET", `/api/sms/${path(commId)}/events`),
  cancel: (commId) => call("DELETE", `/api/sms/${path(commId)}`),
  resend: (commId) => call("POST", `/api/sms/${path(commId)}/resend`),
  optOuts: () => call("GET", "/api/optouts"),
  addOptOut: (number) => call("POST", "/api/optouts", { body: { PhoneNumber: number } }),
  removeOptOut: (number) => call("DELETE", `/api/optouts/${path(number)}`),
  webhook: () => call("GET", "/api/webhook"),
  setWebhook: (url) => call("PUT", "/api/webhook", { body: { Url: url } }),
  deleteWebhook: () => call("DELETE", "/api/webhook"),
  failedEvents: () => call("GET", "/api/webhook/events"),
  retryEvent: (eventId) => call("POST", `/api/webhook/events/${path(eventId)}/retry`),
};
