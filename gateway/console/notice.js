// The page's one error area (#error, role=alert): the API's ResponseStatus.Message, in words.
const area = () => document.getElementById("error");

export function showError(message) {
  area().textContent = message;
  area().hidden = false;
}

export function clearError() {
  area().textContent = "";
  area().hidden = true;
}

/** An API call's failure shown; a 401 also forgets the key and returns to sign-in (app.js listens). */
export function report(error) {
  showError(error.message || String(error));
  if (error.status === 401) window.dispatchEvent(new CustomEvent("console:unauthorized"));
}
