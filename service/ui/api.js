// Calls to the gateway. The page lives at <gateway>/ui/, so the API is one level up: resolved
// from the page's own address, it also works behind a proxy that adds a path prefix. The
// bearer token, when this gateway needs one, is kept in sessionStorage: it survives a reload
// of the tab and is gone when the tab closes.

const TOKEN_KEY = "ecgscreen.token";
const API_ROOT = new URL("../", document.baseURI);

/** "/predict" -> the gateway's /predict, wherever the page is mounted. */
export function endpoint(path) {
  return new URL(path.replace(/^\//, ""), API_ROOT).href;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A refusal or failure as the gateway describes it: {error, detail, status, request_id}. */
export class ApiError extends Error {
  constructor({ error, detail, status, request_id: requestId }) {
    super(detail || error);
    this.code = error || "internal";
    this.detail = detail || "";
    this.status = status || 0;
    this.requestId = requestId || "";
  }
}

/** What this gateway offers (model card summary, token needed, endpoints): /ui/about.json. */
export async function about() {
  const response = await fetch("about.json");
  if (!response.ok) throw new Error(`about.json: HTTP ${response.status}`);
  return response.json();
}

/** POST a multipart form; returns the Response when 2xx, else throws ApiError. */
export async function post(path, fields) {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    if (value instanceof File) form.append(name, value, value.name);
    else form.append(name, value);
  }
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  let response;
  try {
    response = await fetch(endpoint(path), { method: "POST", body: form, headers });
  } catch (error) {
    throw new ApiError({ error: "network", detail: String(error.message || error), status: 0 });
  }
  if (response.ok) return response;
  let body;
  try {
    body = await response.json();
  } catch {
    body = { error: "internal", detail: `HTTP ${response.status} ${response.statusText}` };
  }
  throw new ApiError({ status: response.status, request_id: response.headers.get("x-request-id"), ...body });
}

/** The parts of a multipart/related body (the DICOMweb STOW shape /report answers with). */
export function multipartParts(buffer, contentType) {
  const match = /boundary="?([^";]+)"?/i.exec(contentType || "");
  if (!match) throw new Error("the response has no multipart boundary");
  const bytes = new Uint8Array(buffer);
  const delimiter = new TextEncoder().encode(`--${match[1]}`);
  const starts = [];
  for (let i = indexOf(bytes, delimiter, 0); i !== -1; i = indexOf(bytes, delimiter, i + delimiter.length)) {
    starts.push(i);
  }
  const parts = [];
  for (let k = 0; k + 1 < starts.length; k++) {
    const from = starts[k] + delimiter.length;
    const headerEnd = indexOf(bytes, new TextEncoder().encode("\r\n\r\n"), from);
    if (headerEnd === -1 || headerEnd > starts[k + 1]) continue;
    let end = starts[k + 1];
    if (bytes[end - 2] === 13 && bytes[end - 1] === 10) end -= 2; // the CRLF before the delimiter
    const headers = new TextDecoder().decode(bytes.subarray(from, headerEnd));
    const type = /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1].trim() || "application/octet-stream";
    parts.push({ type, bytes: bytes.slice(headerEnd + 4, end) });
  }
  return parts;
}

function indexOf(haystack, needle, from) {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
