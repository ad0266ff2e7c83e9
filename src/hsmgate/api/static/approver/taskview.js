// What a task is for, in plain words: approvalToBeSigned decoded (token.js), the request kind of the
// level-3 task, the rule's tokens from the policy in the level-5 key attributes, the approvals given
// from the level-6 request status.

import { decodeApproval, OPERATIONS, TAG } from "./token.js";
import { fromBase64, printable, sha256Hex, toHex } from "./util.js";

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
