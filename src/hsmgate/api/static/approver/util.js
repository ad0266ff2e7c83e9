// Small helpers of the approver app: bytes ↔ base64 / hex, SHA-256, text that shows as it is, and
// the one error type whose message is meant for the person using the app.

/** An error whose message is shown to the user as it is. */
export class UserError extends Error {}

/** What to show for `error`: a UserError's message, else the error's name and message. */
export function errorText(error) {
  return error instanceof UserError ? error.message : `${error.name}: ${error.message}`;
}

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

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(bytes) {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)));
}

/** Characters that would make text show other than it is: controls (tab and line ends aside), C1
 * controls, zero-width and bidirectional formatting characters (a payload "…\u202Egnp.exe" reads
 * backwards), the byte-order mark. Text holding one is shown as hex instead. */
const DECEPTIVE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/u;

/** `bytes` as text when they are UTF-8 that shows as it is, else null. */
export function printable(bytes) {
  try {
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    return DECEPTIVE.test(text) ? null : text;
  } catch {
    return null;
  }
}
