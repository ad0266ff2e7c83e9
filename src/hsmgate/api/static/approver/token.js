// The approvalToBeSigned decoder (TSB reference §6.5; the server's codec is
// hsmgate/domain/ska/approval_token.py). All integers little-endian:
//   container = u32 length-of-rest ‖ TLV*
//   TLV       = u16 tag ‖ u16 length ‖ value ‖ zero padding to a multiple of 4 bytes
// Timed token:     EkaOperation, LabelUtf8String (key), EkaTimeStamp, DerSignature, payload
// Time-less token: EkaOperation, LabelUtf8String (""), payload
// HSM timestamp:   u32 len ‖ payload TLV ‖ SecondsSinceEpoch (u64) ‖ LabelUtf8String (timestamp key)
// Strict like the server's: wrong lengths, non-zero padding, unknown or misplaced tags are errors.

export const TAG = Object.freeze({
  EKA_OPERATION: 0x003b,
  LABEL: 0x1002,
  SECONDS_SINCE_EPOCH: 0x0107,
  EKA_TIMESTAMP: 0x1054,
  DER_SIGNATURE: 0x1056,
  SIGN_PAYLOAD: 0x1057,
  MODIFY_PAYLOAD: 0x1058,
});

/** What each EkaOperation value lets the key do (BLOCK/UNBLOCK inferred, reference §6.5). */
export const OPERATIONS = Object.freeze({
  1: "use the key (sign, decrypt, unwrap, certificate)",
  2: "block the key",
  3: "unblock the key",
  4: "change the key's policy",
});

export class TokenFormatError extends Error {}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function hex4(tag) {
  return "0x" + tag.toString(16).padStart(4, "0");
}

/** The TLVs of one container (`bytes` starts with its u32 length header). */
export function readContainer(bytes, what) {
  if (bytes.length < 4) {
    throw new TokenFormatError(`${what}: ${bytes.length} bytes, too short for a length header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  if (length !== bytes.length - 4) {
    throw new TokenFormatError(`${what}: header says ${length} bytes, ${bytes.length - 4} follow`);
  }
  const items = [];
  let at = 4;
  while (at < bytes.length) {
    if (bytes.length - at < 4) throw new TokenFormatError(`${what}: truncated TLV header at byte ${at}`);
    const tag = view.getUint16(at, true);
    const size = view.getUint16(at + 2, true);
    const start = at + 4;
    const end = start + size;
    const padded = start + ((size + 3) & ~3);
    if (padded > bytes.length) throw new TokenFormatError(`${what}: TLV ${hex4(tag)} runs past the end`);
    for (let i = end; i < padded; i++) {
      if (bytes[i] !== 0) throw new TokenFormatError(`${what}: non-zero padding after TLV ${hex4(tag)}`);
    }
    items.push({ tag, value: bytes.subarray(start, end) });
    at = padded;
  }
  return items;
}

function expectTags(items, expected, what) {
  const tags = items.map((item) => item.tag);
  const ok = tags.length === expected.length && expected.every((allowed, i) => allowed.includes(tags[i]));
  if (!ok) {
    throw new TokenFormatError(`${what}: tags ${tags.map(hex4).join(", ")} are not in the expected order`);
  }
}

function text(value, what) {
  try {
    return utf8.decode(value);
  } catch {
    throw new TokenFormatError(`${what} is not UTF-8`);
  }
}

function u32(value, what) {
  if (value.length !== 4) throw new TokenFormatError(`${what}: ${value.length} bytes, not 4`);
  return new DataView(value.buffer, value.byteOffset, 4).getUint32(0, true);
}

const PAYLOAD_TAGS = [TAG.SIGN_PAYLOAD, TAG.MODIFY_PAYLOAD];

/** The HSM timestamp blob: its payload, the moment it was taken and the timestamp key's name. */
export function decodeHsmTimestamp(bytes) {
  const items = readContainer(bytes, "HSM timestamp");
  expectTags(items, [PAYLOAD_TAGS, [TAG.SECONDS_SINCE_EPOCH], [TAG.LABEL]], "HSM timestamp");
  const seconds = items[1].value;
  if (seconds.length !== 8) throw new TokenFormatError("HSM timestamp: SecondsSinceEpoch is not 8 bytes");
  const since = new DataView(seconds.buffer, seconds.byteOffset, 8).getBigUint64(0, true);
  return {
    payloadTag: items[0].tag,
    payload: items[0].value,
    moment: new Date(Number(since) * 1000),
    keyName: text(items[2].value, "the timestamp key's name"),
  };
}

/** Decode approvalToBeSigned: {operation, label, payloadTag, payload, timeLess, timestamp, timestampKey}. */
export function decodeApproval(bytes) {
  const items = readContainer(bytes, "approvalToBeSigned");
  const timed = items.length === 5;
  expectTags(items, timed
    ? [[TAG.EKA_OPERATION], [TAG.LABEL], [TAG.EKA_TIMESTAMP], [TAG.DER_SIGNATURE], PAYLOAD_TAGS]
    : [[TAG.EKA_OPERATION], [TAG.LABEL], PAYLOAD_TAGS], "approvalToBeSigned");
  const payloadItem = items[items.length - 1];
  const token = {
    operation: u32(items[0].value, "EkaOperation"),
    label: text(items[1].value, "the key label"),
    payloadTag: payloadItem.tag,
    payload: payloadItem.value,
    timeLess: !timed,
    timestamp: null,
  };
  if (timed) {
    const stamp = decodeHsmTimestamp(items[2].value);
    if (stamp.payloadTag !== token.payloadTag || !equalBytes(stamp.payload, token.payload)) {
      throw new TokenFormatError("the HSM timestamp covers another payload than the token");
    }
    token.timestamp = stamp;
  }
  return token;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
