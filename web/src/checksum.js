// Checking a thin client's copy against the server's `checksum` messages (docs/protocol.md,
// "Divergence checks"); the Python twin is cowrite/client/checksum.py.
//
// textChecksum: CRC-32 (zlib's) of the text's UTF-8 bytes, a lone surrogate counting as U+FFFD
// (what TextEncoder does; Python's cowrite.protocol.text_checksum does the same), so a JavaScript
// string and a Python str of the same code points agree. tests/checksum_vectors.json holds the
// shared test vectors.

import { textOf } from "./rope.js";

// Slice-by-8 tables: TABLES[0] is zlib's byte table, TABLES[t][n] the CRC of byte n followed by
// t zero bytes, so eight bytes fold in with eight lookups and no loop-carried shift per byte
// (about 3× the byte-at-a-time loop; the check runs over the whole text of every node).
const TABLES = (() => {
  const tables = [];
  for (let t = 0; t < 8; t++) tables.push(new Uint32Array(256));
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tables[0][n] = c >>> 0;
  }
  for (let t = 1; t < 8; t++) {
    for (let n = 0; n < 256; n++) {
      const prev = tables[t - 1][n];
      tables[t][n] = (tables[0][prev & 0xff] ^ (prev >>> 8)) >>> 0;
    }
  }
  return tables;
})();
const [T0, T1, T2, T3, T4, T5, T6, T7] = TABLES;

const encoder = new TextEncoder();
// The UTF-8 bytes are written into one reused buffer (no allocation per check); a text whose
// bytes could pass KEEP_BYTES gets a buffer of its own, so one huge document does not pin it.
const KEEP_BYTES = 1 << 22;
let scratch = new Uint8Array(4096);

function utf8(text) {
  const most = text.length * 3; // a UTF-16 code unit is at most 3 UTF-8 bytes
  if (most > KEEP_BYTES) return encoder.encode(text);
  if (scratch.length < most) scratch = new Uint8Array(Math.max(most, scratch.length * 2));
  return scratch.subarray(0, encoder.encodeInto(text, scratch).written);
}

/** CRC-32 of the UTF-8 encoding of `text` (an unsigned 32-bit integer). */
export function textChecksum(text) {
  const bytes = utf8(text);
  const n = bytes.length;
  let crc = 0xffffffff;
  let i = 0;
  for (const whole = n - (n & 7); i < whole; i += 8) {
    const a = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = T7[a & 0xff] ^ T6[(a >>> 8) & 0xff] ^ T5[(a >>> 16) & 0xff] ^ T4[a >>> 24] ^
      T3[bytes[i + 4]] ^ T2[bytes[i + 5]] ^ T1[bytes[i + 6]] ^ T0[bytes[i + 7]];
  }
  for (; i < n; i++) crc = T0[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** The text nodes of `state` (a ThinDocState) whose copy fails `msg` ({version, sums}); empty
 *  when the state is not at msg.version. `outstanding(node)`: the client has an edit of that node
 *  in flight or pending.
 *
 *  The server state at `version` is kept apart from our unacknowledged edits, so it is checked
 *  exactly whatever is outstanding; for a node with nothing outstanding the local view must equal
 *  it, so that is checked too. For each failing node with nothing outstanding the local view
 *  becomes the merge base, so the snapshot rejoin the caller requests turns what the user sees
 *  into exactly the server's text. */
export function verify(state, msg, outstanding) {
  if (state.version !== msg.version || !state.joined) return [];
  const diverged = [];
  for (const [node, expected] of Object.entries(msg.sums || {})) {
    if (state.kind(node) !== "text") continue;
    const server = state.server.has(node) ? textOf(state.server.get(node)) : "";
    if (typeof server !== "string") continue;
    const mine = outstanding(node);
    const local = state.local.has(node) ? textOf(state.local.get(node)) : "";
    if (textChecksum(server) === expected && (mine || local === server)) continue;
    diverged.push(node);
    if (!mine && typeof local === "string") state.server.set(node, local);
  }
  return diverged;
}
