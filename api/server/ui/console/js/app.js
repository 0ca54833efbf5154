// The console's shell: hash routing between pages, the token prompt, the node label.
import { get, onTokenNeeded, setToken, token } from "./api.js";
import { clear, errorText, message } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as keys from "./pages/keys.js";
import * as changes from "./pages/changes.js";
import * as streams from "./pages/streams.js";
import * as bus from "./pages/bus.js";
import * as pipelines from "./pages/pipelines.js";
import * as sync from "./pages/sync.js";

const PAGES = { overview, keys, changes, streams, bus, pipelines, sync };
const view = document.getElementById("view");
let cleanup = null;

// -- the token prompt: a node with tokens answers 401 until one is given --
const dialog = document.getElementById("token-dialog");
const input = document.getElementById("token-input");
let pending = null;

function askForToken(reason) {
  if (pending) return pending;
  document.getElementById("token-reason").textContent = reason || "";
  input.value = token();
  pending = new Promise((resolve) => {
    const done = (ok) => {
      pending = null;
      resolve(ok);
    };
    dialog.onclose = () => done(dialog.returnValue === "ok");
  });
  dialog.showModal();
  input.focus();
  return pending;
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(input.value.trim());
  dialog.close("ok");
});
document.getElementById("token-clear").addEventListener("click", () => {
  setToken("");
  input.value = "";
  dialog.close("cancel");
  route();
});
document.getElementById("token-button").addEventListener("click", async () => {
  if (await askForToken("Requests carry this token as 'Authorization: Bearer'.")) route();
});
onTokenNeeded(askForToken);

// -- routing --
async function route() {
  const [name, ...rest] = (location.hash.replace(/^#\/?/, "") || "overview").split("/");
  const page = PAGES[name] || overview;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (PAGES[name] ? name : "overview"));
  }
  if (cleanup) {
    try {
      cleanup();
    } catch (_) {
      /* a page that failed to tidy must not block the next */
    }
  }
  cleanup = null;
  clear(view);
  try {
    cleanup = (await page.render(view, rest.map(decodeURIComponent))) || null;
  } catch (error) {
    clear(view, message("error", errorText(error)));
  }
}

async function label() {
  try {
    const health = await get("/health");
    document.getElementById("node-label").textContent = `node ${health.node_id}`;
  } catch (_) {
    document.getElementById("node-label").textContent = "node unreachable";
  }
}

window.addEventListener("hashchange", route);
label();
route();
