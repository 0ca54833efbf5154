// The console's only way to the node: the public HTTP API and WebSockets, same origin.
const TOKEN_KEY = "kvdb.token";

export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

let tokenListener = null;

export function onTokenNeeded(listener) {
  tokenListener = listener;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const all = { ...(extra || {}) };
  const t = token();
  if (t) all.authorization = `Bearer ${t}`;
  return all;
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch (_) {
    body = {};
  }
  return new ApiError(
    response.status,
    body.error || `http_${response.status}`,
    body.message || response.statusText || `HTTP ${response.status}`,
    body,
  );
}

// fetch() with the token; on 401 asks for a token once and retries.
export async function request(method, path, { body, json, headers: extra, raw } = {}) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(extra), credentials: "same-origin" };
    if (json !== undefined) {
      init.body = JSON.stringify(json);
      init.headers["content-type"] = "application/json";
    } else if (body !== undefined) {
      init.body = body;
    }
    const response = await fetch(path, init);
    if (response.status === 401 && attempt === 0 && tokenListener) {
      const error = await errorOf(response);
      if (await tokenListener(error.message)) continue;
      throw error;
    }
    if (!response.ok) throw await errorOf(response);
    return raw ? response : response.json();
  }
}

export const get = (path) => request("GET", path);
export const post = (path, json) => request("POST", path, { json });
export const put = (path, json) => request("PUT", path, { json });
export const del = (path) => request("DELETE", path);

export function keyPath(key) {
  return "/kv/" + key.split("/").map(encodeURIComponent).join("/");
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(name, v));
    else search.append(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// A WebSocket on the same host; browsers cannot set headers on it, so the token rides in
// the access_token query parameter.
export function socket(path, params = {}) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  const all = t ? { ...params, access_token: t } : params;
  return new WebSocket(`${scheme}//${location.host}${path}${query(all)}`);
}
