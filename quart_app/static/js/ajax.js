// The /ajax page: each button makes one API call and shows its outcome in its row.
import { ApiError, api } from "./api.js";

let lastThingId = null;

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
    return result;
  },
  list: () => api.get("/api/things?limit=5"),
  toggle: () => api.patch(thingPath(), { done: true }),
  delete: async () => {
    const result = await api.delete(thingPath());
    lastThingId = null;
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
