// The approver protocol, as a TSB approver app speaks it (TSB reference §3.4, §6.3–§6.5, §8):
// registration (POST /v1/approver/onboard, AES-GCM, PKCS#12), the task list (POST
// /v1/filteredAllApprovalTask, authenticated by a timestamp signed with the approver key), Approve
// (POST /v1/approval) and Reject (DELETE /v1/task). Every signature is RSASSA-PKCS1-v1_5 with SHA-256
// by WebCrypto, over the UTF-8 timestamp or the decoded approvalToBeSigned: what the server checks
// (domain/ska/approvals.py verify_signature).

import { saveIdentity } from "./keystore.js";
import { errorText, fromBase64, sha256Hex, toBase64, UserError } from "./util.js";

const SIGNATURE = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
const DIGEST_ALGORITHM = "SHA-256";
const TRANSPORT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const TRANSPORT_LENGTH = 32; // 32 ASCII characters = a 256-bit AES-GCM key (the TSB takes 16 or 32)

/** How far this browser's clock runs ahead of the server's (ms, from answers' Date headers). The
 * server refuses a task-list timestamp from its future (maxFutureTimestampDiff defaults to 0). */
let clockAhead = 0;
const TIMESTAMP_MARGIN_MS = 2000;  // well inside the 600 s a timestamp may lie in the past

function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (!Number.isNaN(date)) clockAhead = Math.max(0, Date.now() - (date + 1000));  // Date has whole seconds
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
