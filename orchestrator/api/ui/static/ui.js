// The UI's one script: actions through fetch, and a saga page kept current in place
// (polled every 2 s while the saga is not at rest; nothing is asked of an idle page).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

function flash(message, ok) {
  const el = document.getElementById("flash");
  el.textContent = message; // text, never HTML
  el.className = ok ? "ok" : "refused";
  el.hidden = false;
}

function setStatus(root, status) {
  const badge = root.querySelector('[data-field="status"]');
  if (badge) {
    badge.textContent = status;
    badge.className = "badge " + status;
  }
  root.dataset.status = status;
}

async function act(form) {
  const response = await fetch(form.action, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" },
    credentials: "same-origin",
  });
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = { message: response.statusText }; }
  flash(answer.message || answer.detail || response.statusText, response.ok);
  if (response.ok) {
    const saga = document.getElementById("saga");
    setStatus(saga, answer.status);
    saga.dataset.atRest = "false";
    follow(saga);
  }
}

let following = null;

function follow(saga) {
  if (following) return;
  following = setInterval(async () => {
    const response = await fetch(`/ui/sagas/${saga.dataset.saga}/state`, { credentials: "same-origin" });
    if (!response.ok) return;
    const state = await response.json();
    setStatus(saga, state.status); // the first status badge in it is the saga's
    for (const step of state.steps) {
      const row = saga.querySelector(`tr[data-step="${CSS.escape(step.name)}"]`);
      if (!row) continue;
      setStatus(row, step.status);
      row.querySelector('[data-field="attempts"]').textContent = step.attempts;
      row.querySelector('[data-field="compensation_attempts"]').textContent = step.compensation_attempts;
    }
    const error = saga.querySelector('[data-field="error"]');
    error.hidden = !state.error;
    error.textContent = state.error ? `${state.error.step} (${state.error.phase}): ${state.error.message}` : "";
    if (["completed", "compensated", "failed"].includes(state.status)) {
      clearInterval(following);
      following = null;
    }
  }, 2000);
}

async function bulk(form) {
  // The count was read when the page was drawn: say it before anything is re-armed.
  if (!window.confirm(`Re-arm ${form.dataset.count} failed sagas? Each resumes where it stopped.`)) return;
  const response = await fetch(form.action, {
    method: "POST",
    headers: { "X-CSRF-Token": csrf(), "Accept": "application/json" },
    body: new URLSearchParams(new FormData(form)),
    credentials: "same-origin",
  });
  const answer = await response.json();
  flash(answer.message || response.statusText, response.ok);
  if (response.ok) followRows();
}

let rowsFollowed = null;

function followRows() {
  // Rows not at rest are re-read every 2 s, in place, until they are.
  if (rowsFollowed) return;
  rowsFollowed = setInterval(async () => {
    const moving = [...document.querySelectorAll("tr[data-saga]")].filter(
      (row) => !["completed", "compensated"].includes(row.dataset.status));
    if (!moving.length) { clearInterval(rowsFollowed); rowsFollowed = null; return; }
    for (const row of moving) {
      const response = await fetch(`/ui/sagas/${row.dataset.saga}/state`, { credentials: "same-origin" });
      if (response.ok) setStatus(row, (await response.json()).status);
    }
  }, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-bulk]")) {
    form.addEventListener("submit", (event) => { event.preventDefault(); bulk(form); });
  }
  if ([...document.querySelectorAll("tr[data-saga]")].some(
    (row) => ["running", "compensating"].includes(row.dataset.status))) followRows();
  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", (event) => { event.preventDefault(); act(form); });
  }
  const saga = document.getElementById("saga");
  if (saga && saga.dataset.atRest !== "true") follow(saga);
});
