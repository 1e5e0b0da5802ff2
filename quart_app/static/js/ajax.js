// The /ajax page: each button makes one API call and shows its outcome in its row, and
// the list below the table follows the user's things live over /api/things/events.
import { ApiError, api, loginUrl, subscribe } from "./api.js";

let lastThingId = null;

// The list of things, kept current by the stream's events (and the buttons' answers).
// Every change is an upsert by id or a removal, so an event for a thing already shown as
// it is changes nothing. While the list is (re)loading, events wait and are applied on
// top of it: the load may have read the database before or after each of them.
const live = {
  things: new Map(),
  queued: null,
  loads: 0,

  upsert(thing) {
    this.apply(() => {
      const shown = this.things.get(thing.id);
      // An older state of a thing never replaces a newer one (an event queued during a
      // load that already read the change).
      if (shown && Date.parse(shown.updated_at) > Date.parse(thing.updated_at)) return;
      this.things.set(thing.id, thing);
    });
  },

  remove({ id }) {
    this.apply(() => this.things.delete(id));
  },

  apply(change) {
    if (this.queued) {
      this.queued.push(change);
      return;
    }
    change();
    this.render();
  },

  async reload() {
    const load = ++this.loads;
    this.queued = this.queued || [];
    let page;
    try {
      ({ body: page } = await api.get("/api/things?limit=100"));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (load !== this.loads) return;
      this.queued = null;
      showLiveStatus("failure", `list: ${error.status}`);
      return;
    }
    // A later reload (a reset meanwhile) owns the queue now.
    if (load !== this.loads) return;
    this.things = new Map(page.items.map((thing) => [thing.id, thing]));
    const queued = this.queued;
    this.queued = null;
    queued.forEach((change) => change());
    this.render();
    // Says the list is the database's, not only what the buttons and events added.
    document.getElementById("things").dataset.loaded = String(load);
  },

  render() {
    const list = document.getElementById("things");
    const items = [...this.things.values()].sort((a, b) => b.id - a.id);
    list.replaceChildren(
      ...items.map((thing) => {
        const item = document.createElement("li");
        item.dataset.thingId = String(thing.id);
        item.dataset.done = String(thing.done);
        const title = document.createElement("span");
        title.className = "title";
        title.textContent = thing.title;
        item.append(title);
        if (thing.done) item.append(" ✓");
        return item;
      }),
    );
  },
};

function showLiveStatus(state, text) {
  const line = document.getElementById("live-status");
  line.dataset.state = state;
  line.classList.toggle("success", state === "live");
  line.classList.toggle("failure", state === "stopped" || state === "failure");
  line.textContent = text;
}

function startLive() {
  const signIn = document.getElementById("live-sign-in");
  subscribe("/api/things/events", {
    events: {
      "thing.created": (thing) => live.upsert(thing),
      "thing.updated": (thing) => live.upsert(thing),
      "thing.deleted": (gone) => live.remove(gone),
      reset: () => live.reload(),
    },
    onopen({ resumed }) {
      showLiveStatus("live", "live");
      if (!resumed) live.reload();
    },
    onreconnecting() {
      showLiveStatus("reconnecting", "reconnecting");
    },
    onclosed(status, body, retryIn) {
      if (retryIn === null) {
        showLiveStatus("stopped", `disconnected: ${status}`);
        if (status === 401) {
          // Signed out elsewhere: offer to sign in again rather than leave the page
          // under the user's hands.
          signIn.href = loginUrl();
          signIn.hidden = false;
        }
      } else {
        showLiveStatus("waiting", `disconnected: ${status}, retrying in ${retryIn} s`);
      }
      // The list is worth showing even while the stream is refused.
      if (live.loads === 0 && status !== 401) live.reload();
    },
  });
}

function thingTitle() {
  return document.querySelector("#thing-form input[name=title]").value;
}

function thingPath() {
  return lastThingId === null ? "/api/things/0" : `/api/things/${lastThingId}`;
}

const calls = {
  status: () => api.get("/api/status"),
  create: async () => {
    const result = await api.post("/api/things", { title: thingTitle() });
    lastThingId = result.body.id;
    live.upsert(result.body);
    return result;
  },
  list: () => api.get("/api/things?limit=5"),
  toggle: async () => {
    const result = await api.patch(thingPath(), { done: true });
    live.upsert(result.body);
    return result;
  },
  delete: async () => {
    const id = lastThingId;
    const result = await api.delete(thingPath());
    lastThingId = null;
    live.remove({ id });
    return result;
  },
  admin: () => api.get("/api/admin/users?limit=5"),
  invalid: () => api.post("/api/things", { title: "" }),
  missing: () => api.get("/api/no-such-route"),
};

function show(row, { status, ok, body }) {
  row.classList.toggle("success", ok);
  row.classList.toggle("failure", !ok);
  row.querySelector(".status").textContent = String(status);
  row.querySelector(".ok").textContent = String(ok);
  row.querySelector(".body").textContent = body === null ? "(no body)" : JSON.stringify(body, null, 2);
}

async function run(name) {
  const row = document.querySelector(`tr[data-call="${name}"]`);
  try {
    show(row, await calls[name]());
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    show(row, error);
  }
}

document.querySelectorAll("button[data-call]").forEach((button) => {
  button.addEventListener("click", () => run(button.dataset.call));
});

startLive();
