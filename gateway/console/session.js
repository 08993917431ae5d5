// The API key, kept in this tab's sessionStorage only: never a cookie, never a URL, gone when the tab closes.
const KEY = "sms-gateway-api-key";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function signIn(key) {
  sessionStorage.setItem(KEY, key.trim());
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}
