// The console's entry: sign-in, the hash routes and which view draws #view.
import { renderJourney } from "./journey.js";
import { forgetMessages, renderMessages } from "./messages.js";
import { clearError } from "./notice.js";
import { renderOptOuts } from "./optouts.js";
import { apiKey, signIn, signOut } from "./session.js";
import { renderWebhook } from "./webhook.js";

const ROUTES = [
  [/^#\/messages\/(.+)$/, (view, found) => renderJourney(view, decodeURIComponent(found[1])), "nav-messages"],
  [/^#\/optouts$/, (view) => renderOptOuts(view), "nav-optouts"],
  [/^#\/webhook$/, (view) => renderWebhook(view), "nav-webhook"],
  [/^#\/messages$/, (view) => renderMessages(view), "nav-messages"],
];

let stopView = null; // the current view's cleanup (its refresh timer)

function showSignIn() {
  stopCurrent();
  forgetMessages();
  document.getElementById("nav").hidden = true;
  document.getElementById("view").replaceChildren();
  document.getElementById("sign-in").hidden = false;
  document.getElementById("api-key").focus();
}

function stopCurrent() {
  if (stopView) stopView();
  stopView = null;
}

function route() {
  if (!apiKey()) {
    showSignIn();
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  const [pattern, render, nav] = ROUTES.find(([pattern]) => pattern.test(location.hash)) ?? [];
  if (!pattern) {
    location.replace("#/messages");
    return;
  }
  stopCurrent();
  clearError();
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.id === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = document.getElementById("view");
  stopView = render(view, location.hash.match(pattern)) ?? null;
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("api-key");
  if (!input.value.trim()) return;
  signIn(input.value);
  input.value = "";
  clearError();
  if (location.hash === "#/messages") route();
  else location.hash = "#/messages";
});

document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  clearError();
  history.replaceState(null, "", location.pathname);
  showSignIn();
});

// The skip link moves focus; followed as a link, its "#main" would be taken for a route.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});

window.addEventListener("console:unauthorized", () => {
  signOut();
  showSignIn();
});
window.addEventListener("hashchange", route);
route();
