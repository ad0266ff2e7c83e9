// hsmgate approver app, the page: the register form, the task list that refreshes by itself, the
// task view and its Approve / Reject buttons. The protocol is in protocol.js, the task's meaning in
// taskview.js, the key in keystore.js.

import { forgetIdentity, loadIdentity } from "./keystore.js";
import { approve, fetchTasks, register, reject } from "./protocol.js";
import { describe } from "./taskview.js";
import { errorText } from "./util.js";

export const REFRESH_SECONDS = 5;

const $ = (id) => document.getElementById(id);
let identity = null;
let tasks = [];
let shown = null;
let timer = null;

function message(text, ok) {
  const element = $("message");
  element.textContent = text;
  element.className = ok ? "ok" : "error";
  element.hidden = false;
}

function showIdentity() {
  $("register").hidden = identity !== null;
  $("tasks").hidden = identity === null;
  $("identity-line").hidden = identity === null;
  if (identity) {
    $("identity-name").textContent = identity.name;
    $("identity-fingerprint").textContent = identity.fingerprint;
  } else {
    $("task-view").hidden = true;
  }
}

let pending = null;  // the list request under way: one at a time

/** Fetch and draw the list afresh (after the one under way, if any). */
async function refresh() {
  if (!identity) return;
  while (pending) await pending;
  pending = redraw().finally(() => { pending = null; });
  await pending;
}

async function redraw() {
  try {
    tasks = await fetchTasks(identity);
  } catch (error) {
    message(`Could not fetch the tasks: ${errorText(error)}`, false);
    return;
  }
  $("refreshed").textContent = new Date().toLocaleTimeString();
  const body = $("task-rows");
  const rows = [];
  for (const task of tasks) {
    let about;
    try {
      about = await describe(task);
    } catch (error) {
      about = { operation: `undecodable (${errorText(error)})`, key: "", askedBy: "", created: "", expires: "" };
    }
    const row = document.createElement("tr");
    row.dataset.taskId = task.id;
    for (const value of [about.operation, about.key, about.askedBy, about.created, about.expires]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.append(cell);
    }
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "View";
    open.className = "view";
    open.addEventListener("click", () => view(task.id));
    const cell = document.createElement("td");
    cell.append(open);
    row.append(cell);
    rows.push(row);
  }
  body.replaceChildren(...rows);
  $("no-tasks").hidden = tasks.length > 0;
}

async function view(taskId) {
  await refresh();  // what is shown is the task as it stands now (approvals given meanwhile)
  const task = tasks.find((t) => t.id === taskId);
  if (!task) {
    message(`Task ${taskId} no longer waits for you.`, false);
    return;
  }
  shown = task;
  $("view-id").textContent = task.id;
  const list = $("task-details");
  list.replaceChildren();
  try {
    const about = await describe(task);
    for (const [term, value, kind] of about.rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      if (kind === "pre") {
        const pre = document.createElement("pre");
        pre.textContent = value;
        dd.append(pre);
      } else {
        dd.textContent = value;
      }
      list.append(dt, dd);
    }
    $("approve").disabled = false;
  } catch (error) {
    const dd = document.createElement("dd");
    dd.textContent = `This task cannot be decoded and cannot be approved: ${errorText(error)}`;
    list.append(dd);
    $("approve").disabled = true;  // never sign what cannot be shown
  }
  $("task-view").hidden = false;
}

async function decide(action, verb) {
  if (!shown) return;
  const task = shown;
  try {
    await action(identity, task);
    message(`Task ${task.id} ${verb}.`, true);
    shown = null;
    $("task-view").hidden = true;
  } catch (error) {
    message(`Task ${task.id} was not ${verb}: ${errorText(error)}`, false);
  }
  await refresh();
}

function start() {
  showIdentity();
  if (timer) clearInterval(timer);
  timer = null;
  if (identity) {
    refresh();
    timer = setInterval(() => { if (!pending) refresh(); }, REFRESH_SECONDS * 1000);
  }
}

async function main() {
  $("refresh-seconds").textContent = String(REFRESH_SECONDS);
  $("register-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const button = $("register-button");
    button.disabled = true;
    const fields = Object.fromEntries(new FormData(form));
    form.reset();  // the one-time code and the backup password do not stay in the page
    try {
      identity = await register(fields.approverName.trim(), fields.oneTimeCode.trim(), fields.backupPassword,
        fields.apiKey || null);
      message(`Registered as ${identity.name}. Your key is kept in this browser only.`, true);
      start();
    } catch (error) {
      message(`Registration failed: ${errorText(error)}`, false);
    } finally {
      button.disabled = false;
    }
  });
  $("refresh").addEventListener("click", refresh);
  $("approve").addEventListener("click", () => decide(approve, "approved"));
  $("reject").addEventListener("click", () => decide(reject, "rejected"));
  $("close-view").addEventListener("click", () => { shown = null; $("task-view").hidden = true; });
  $("forget").addEventListener("click", async () => {
    await forgetIdentity();
    identity = null;
    message("This browser no longer holds the approver key.", true);
    start();
  });
  try {
    identity = (await loadIdentity()) || null;
  } catch (error) {
    message(`This browser's storage cannot be read: ${errorText(error)}`, false);
  }
  start();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", main);
} else {
  main();
}
