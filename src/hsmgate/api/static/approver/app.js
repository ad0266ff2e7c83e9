// hsmgate approver app: registration (POST /v1/approver/onboard), the task list
// (POST /v1/filteredAllApprovalTask, authenticated by a timestamp signed with the approver key),
// the task view (approvalToBeSigned decoded, token.js) and Approve (POST /v1/approval) / Reject
// (DELETE /v1/task). The same protocol as a TSB approver app (TSB reference §3.4, §6.3–§6.5, §8).
// Every signature is RSASSA-PKCS1-v1_5 with SHA-256 by WebCrypto, over the UTF-8 timestamp or the
// decoded approvalToBeSigned: what the server checks (domain/ska/approvals.py verify_signature).

import { decodeApproval, OPERATIONS, TAG } from "./token.js";
import { forgetIdentity, loadIdentity, saveIdentity } from "./keystore.js";

export const REFRESH_SECONDS = 5;
const SIGNATURE = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
const DIGEST_ALGORITHM = "SHA-256";
const TRANSPORT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TRANSPORT_LENGTH = 32; // 32 ASCII characters = a 256-bit AES-GCM key (the TSB takes 16 or 32)

/** The level-3 field naming each request kind (reference §6.3), in plain words. */
const REQUEST_KINDS = [
  ["signedSignRequest", "signRequest", "Sign", "signKeyName"],
  ["signedDecryptRequest", "decryptRequest", "Decrypt", "decryptKeyName"],
  ["signedUnwrapKeyRequest", "unwrapKeyRequest", "Unwrap a key", "unwrapKeyName"],
  ["signedBlockKeyRequest", "blockRequest", "Block the key", "blockKeyName"],
  ["signedUnblockKeyRequest", "unblockRequest", "Unblock the key", "unblockKeyName"],
  ["signedModifyKeyRequest", "modifyRequest", "Change the key's policy", "modifyKeyName"],
  ["signedCertificateRequestRequest", "csrSignRequest", "Certificate signing request", "signKeyName"],
  ["signedSignCertificateRequest", "signCertificateRequest", "Sign a certificate", "signKeyName"],
  ["signedSelfSignCertificateRequestDto", "selfSignCertificateRequest", "Self-sign a certificate", "signKeyName"],
  ["signedDecapsulationRequest", "decapsulationRequest", "Decapsulate (ML-KEM)", "decapsulationKeyName"],
];
const RULES = { 1: "rule_use", 2: "rule_block", 3: "rule_unblock", 4: "rule_modify" };

class UserError extends Error {}

/** How far this browser's clock runs ahead of the server's (ms, from answers' Date headers). The
 * server refuses a task-list timestamp from its future (maxFutureTimestampDiff defaults to 0). */
let clockAhead = 0;
const TIMESTAMP_MARGIN_MS = 2000;  // well inside the 600 s a timestamp may lie in the past

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (!Number.isNaN(date)) clockAhead = Math.max(0, Date.now() - (date + 1000));  // Date has whole seconds
}

// -- bytes ------------------------------------------------------------------------------------------

export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function fromBase64(text, what) {
  let binary;
  try {
    binary = atob(text);
  } catch {
    throw new UserError(`${what} is not base64`);
  }
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** Characters that would make text show other than it is: controls (tab and line ends aside), C1
 * controls, zero-width and bidirectional formatting characters (a payload "…\u202Egnp.exe" reads
 * backwards), the byte-order mark. Text holding one is shown as hex instead. */
const DECEPTIVE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;

/** `bytes` as text when they are UTF-8 that shows as it is, else null. */
function printable(bytes) {
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    return DECEPTIVE.test(text) ? null : text;
  } catch {
    return null;
  }
}

// -- HTTP -------------------------------------------------------------------------------------------

/** Call the server (same origin); a TSB error body becomes "errorCode reason: message". */
async function call(method, path, body, apiKey) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (apiKey) headers["X-API-KEY"] = apiKey;
  let response;
  try {
    response = await fetch(path, { method, headers, body: JSON.stringify(body), cache: "no-store",
      credentials: "omit" });
  } catch (error) {
    throw new UserError(`the server cannot be reached (${error.message})`);
  }
  noteServerClock(response);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (data && data.errorCode !== undefined) {
      throw new UserError(`${data.errorCode} ${data.reason}: ${data.message}`);
    }
    throw new UserError(`HTTP ${response.status} from ${path}`);
  }
  return data;
}

// -- registration -----------------------------------------------------------------------------------

/** A fresh transport password: 32 characters drawn uniformly from TRANSPORT_ALPHABET. */
export function transportPassword() {
  const out = [];
  const limit = 256 - (256 % TRANSPORT_ALPHABET.length);
  while (out.length < TRANSPORT_LENGTH) {
    for (const byte of crypto.getRandomValues(new Uint8Array(TRANSPORT_LENGTH))) {
      if (byte < limit && out.length < TRANSPORT_LENGTH) out.push(TRANSPORT_ALPHABET[byte % TRANSPORT_ALPHABET.length]);
    }
  }
  return out.join("");
}

/** Open the PKCS#12 with the backup password: {pkcs8, certificate, spki} (DER bytes). */
function openPkcs12(container, backupPassword) {
  const forge = globalThis.forge;
  let p12;
  try {
    const asn1 = forge.asn1.fromDer(forge.util.binary.raw.encode(container));
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, backupPassword);
  } catch (error) {
    throw new UserError(`the backup password does not open the key container (${error.message})`);
  }
  const oids = forge.pki.oids;
  const keyBags = p12.getBags({ bagType: oids.pkcs8ShroudedKeyBag })[oids.pkcs8ShroudedKeyBag] || [];
  const certBags = p12.getBags({ bagType: oids.certBag })[oids.certBag] || [];
  if (keyBags.length !== 1 || !keyBags[0].key) throw new UserError("the key container holds no single RSA private key");
  if (certBags.length < 1 || !certBags[0].cert) throw new UserError("the key container holds no certificate");
  const key = keyBags[0].key;
  const certificate = certBags[0].cert;
  if (key.n.compareTo(certificate.publicKey.n) !== 0) {
    throw new UserError("the private key in the container does not belong to its certificate");
  }
  const der = (asn1) => Uint8Array.from(forge.asn1.toDer(asn1).getBytes(), (c) => c.charCodeAt(0));
  return {
    pkcs8: der(forge.pki.wrapRsaPrivateKey(forge.pki.privateKeyToAsn1(key))),
    certificate: der(forge.pki.certificateToAsn1(certificate)),
    spki: der(forge.pki.publicKeyToAsn1(certificate.publicKey)),
  };
}

/** Keep the approver's key from a decrypted PKCS#12: imported into WebCrypto as non-extractable,
 * stored in IndexedDB with the certificate; the container's bytes are overwritten. */
export async function enrol(name, container, backupPassword, apiKey) {
  let opened;
  try {
    opened = openPkcs12(container, backupPassword);
  } finally {
    container.fill(0);
  }
  let privateKey;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", opened.pkcs8, SIGNATURE, false, ["sign"]);
  } finally {
    opened.pkcs8.fill(0);
  }
  const identity = {
    name, privateKey, certificate: toBase64(opened.certificate), publicKey: toBase64(opened.spki),
    fingerprint: (await sha256Hex(opened.spki)).slice(0, 32), apiKey: apiKey || null,
  };
  await saveIdentity(identity);
  return identity;
}

/** POST /v1/approver/onboard with a fresh transport password, decrypt the answer, enrol. */
export async function register(name, oneTimeCode, backupPassword, apiKey) {
  const password = transportPassword();
  const answer = await call("POST", "/v1/approver/onboard",
    { approverName: name, oneTimeCode, transportPassword: password }, apiKey);
  if (!answer || !answer.encryptedPayload || !answer.initializationVector) {
    throw new UserError("the onboarding answer has no encryptedPayload / initializationVector");
  }
  const keyBytes = new TextEncoder().encode(password);
  const transportKey = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, ["decrypt"]);
  keyBytes.fill(0);
  let container;
  try {
    container = new Uint8Array(await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: fromBase64(answer.initializationVector, "initializationVector"), tagLength: 128 },
      transportKey, fromBase64(answer.encryptedPayload, "encryptedPayload")));
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError("the onboarding payload does not decrypt with the transport password");
  }
  try {
    return await enrol(name, container, backupPassword, apiKey);
  } catch (error) {
    throw new UserError(`${errorText(error)}. The one-time code is used up: ask your approver manager `
      + "for a new one (restoreFromBackup or renewOneTimeCode)");
  }
}

// -- approver authentication, approvals -------------------------------------------------------------

async function sign(identity, bytes) {
  return new Uint8Array(await crypto.subtle.sign(SIGNATURE, identity.privateKey, bytes));
}

/** The AuthenticatableRequestDto fields: a fresh timestamp signed with the approver key. */
export async function authentication(identity) {
  const timestamp = new Date(Date.now() - clockAhead - TIMESTAMP_MARGIN_MS).toISOString();
  const signature = await sign(identity, new TextEncoder().encode(timestamp));
  return {
    timestamp, timestampSignature: toBase64(signature), timestampDigestAlgorithm: DIGEST_ALGORITHM,
    approverCertificate: identity.certificate,
  };
}

/** The approver's open tasks with every detail (level6). */
export async function fetchTasks(identity) {
  const body = {
    ...(await authentication(identity)), detailLevel: "level6",
    paging: { pageNumber: 0, pageSize: 100, sortOrder: "CREATION_DATE_ASC" },
  };
  const answer = await call("POST", "/v1/filteredAllApprovalTask", body, identity.apiKey);
  return (answer && answer.tasks) || [];
}

export async function approve(identity, task) {
  const token = fromBase64(task.approvalToBeSigned, "approvalToBeSigned");
  await call("POST", "/v1/approval", {
    id: task.id, approvalToBeSigned: task.approvalToBeSigned, signature: toBase64(await sign(identity, token)),
    approvalDigestAlgorithm: DIGEST_ALGORITHM, approverCertificate: identity.certificate,
  }, identity.apiKey);
}

export async function reject(identity, task) {
  await call("DELETE", "/v1/task", { ...(await authentication(identity)), id: task.id }, identity.apiKey);
}

// -- what a task is for -----------------------------------------------------------------------------

/** Per token of the task's rule (policy in the level-5 key attributes): its timing and its groups. */
function ruleOf(task, operation) {
  if (!task.keyAttributes) return null;
  const xml = new DOMParser().parseFromString(task.keyAttributes, "application/xml");
  const rule = xml.querySelector(`policy > ${RULES[operation]}`);
  if (!rule) return null;
  return Array.from(rule.querySelectorAll(":scope > token"), (token) => ({
    name: token.getAttribute("name"),
    timelock: Number(token.querySelector(":scope > timelock")?.textContent || 0),
    timeout: Number(token.querySelector(":scope > timeout")?.textContent || 0),
    groups: Array.from(token.querySelectorAll(":scope > group"), (group) => ({
      name: group.getAttribute("name"),
      quorum: Number(group.querySelector(":scope > quorum")?.textContent || 0),
      approvers: Array.from(group.querySelectorAll(":scope > approval"), (a) => ({
        type: a.getAttribute("type"), name: a.getAttribute("name"), value: a.textContent.trim(),
      })),
    })),
  }));
}

/** The SPKI (base64) of a policy approval: its value, or a certificate's public key. */
function approverSpki(approval) {
  if (approval.type === "public_key") return approval.value;
  try {
    const forge = globalThis.forge;
    const der = forge.util.decode64(approval.value);
    const certificate = forge.pki.certificateFromAsn1(forge.asn1.fromDer(der));
    return forge.util.encode64(forge.asn1.toDer(forge.pki.publicKeyToAsn1(certificate.publicKey)).getBytes());
  } catch {
    return approval.value;
  }
}

function when(date) {
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function duration(seconds) {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** What the task is for, in plain words: {operation, key, askedBy, created, expires, rows[]}. */
export async function describe(task) {
  const token = decodeApproval(fromBase64(task.approvalToBeSigned, "approvalToBeSigned"));
  const kind = REQUEST_KINDS.find(([field]) => task[field]);
  const inner = kind ? task[kind[0]][kind[1]] || {} : {};
  const metaData = task.metaData ? printable(fromBase64(task.metaData, "metaData")) : null;
  const created = token.timestamp ? token.timestamp.moment : null;
  const rule = ruleOf(task, token.operation);
  const status = task.requestStatus || null;
  const approvedBy = new Set(status ? status.approvedBy : []);
  const rows = [];
  const operation = kind ? kind[2] : OPERATIONS[token.operation] || `operation ${token.operation}`;
  rows.push(["Operation", `${operation} (EkaOperation ${token.operation}: ${OPERATIONS[token.operation] || "unknown"})`]);
  rows.push(["Key", token.label || (kind ? inner[kind[3]] : "") || "(not named)"]);
  if (inner.signatureAlgorithm) rows.push(["Signature algorithm", inner.signatureAlgorithm]);
  if (inner.cipherAlgorithm) rows.push(["Cipher algorithm", inner.cipherAlgorithm]);
  rows.push(["Asked by", metaData ?? (task.metaData ? `(binary metaData, ${task.metaData.length} base64 characters)`
    : "(the request carries no metaData)")]);
  rows.push(["Payload SHA-256", await sha256Hex(token.payload)]);
  if (token.payloadTag === TAG.SIGN_PAYLOAD) {
    const asText = printable(token.payload);
    rows.push([asText !== null ? "Payload (text)" : "Payload (hex)", asText ?? toHex(token.payload), "pre"]);
  } else {
    rows.push(["New policy (binary, hex)", toHex(token.payload), "pre"]);
  }
  rows.push(["Requested", created ? `${when(created)} (HSM timestamp, key ${token.timestamp.keyName})`
    : "no HSM timestamp (a token without time limits)"]);
  let expires = null;
  if (rule && rule.length) {
    for (const entry of rule) {
      const timing = [];
      if (entry.timelock) {
        timing.push(`time lock ${duration(entry.timelock)}` + (created
          ? `, executable from ${when(new Date(created.getTime() + entry.timelock * 1000))}` : ""));
      } else {
        timing.push("no time lock");
      }
      if (entry.timeout) {
        const end = created ? new Date(created.getTime() + entry.timeout * 1000) : null;
        if (end && (!expires || end > expires)) expires = end;
        timing.push(`expires after ${duration(entry.timeout)}` + (end ? ` at ${when(end)}` : ""));
      } else {
        timing.push("never expires");
      }
      rows.push([`Token ${entry.name}`, timing.join("; ")]);
      for (const group of entry.groups) {
        const given = group.approvers.filter((a) => approvedBy.has(approverSpki(a))).length;
        const missing = Math.max(0, group.quorum - given);
        const named = group.approvers.length;
        rows.push([`Group ${group.name}`, `${given} of ${group.quorum} approvals given, ${missing} still needed`
          + ` (${named} approver${named === 1 ? "" : "s"} named)`]);
      }
    }
  }
  if (status) {
    rows.push(["Request", `${status.id}: ${status.status}; approved by ${status.approvedBy.length}, `
      + `waiting for ${status.notYetApprovedBy.length}, rejected by ${status.rejectedBy.length}`]);
  }
  return {
    operation, key: token.label || (kind ? inner[kind[3]] : ""), askedBy: metaData ?? "–",
    created: created ? when(created) : "–", expires: expires ? when(expires) : "–", rows,
  };
}

// -- the page ---------------------------------------------------------------------------------------

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

function errorText(error) {
  return error instanceof UserError ? error.message : `${error.name}: ${error.message}`;
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
