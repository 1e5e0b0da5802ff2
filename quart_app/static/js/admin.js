// The /admin page: promote, demote, deactivate and activate users through the API.
import { ApiError, api } from "./api.js";

const changes = {
  promote: { user_type: "admin" },
  demote: { user_type: "user" },
  deactivate: { is_active: false },
  activate: { is_active: true },
};

function report(ok, text) {
  const line = document.getElementById("admin-result");
  line.hidden = false;
  line.classList.toggle("success", ok);
  line.classList.toggle("failure", !ok);
  line.textContent = text;
}

async function change(row, action) {
  const id = row.dataset.userId;
  try {
    const { status, body } = await api.patch(`/api/admin/users/${id}`, changes[action]);
    row.querySelector(".user-type").textContent = body.user_type;
    row.querySelector(".is-active").textContent = body.is_active ? "yes" : "no";
    report(true, `${status} ${body.username}: ${body.user_type}, active=${body.is_active}`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    report(false, `${error.status} ${error.body && error.body.error}`);
  }
}

document.querySelectorAll("#users button[data-action]").forEach((button) => {
  button.addEventListener("click", () => change(button.closest("tr"), button.dataset.action));
});
