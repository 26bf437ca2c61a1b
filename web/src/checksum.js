// Checking a thin client's copy against the server's `checksum` messages (docs/protocol.md,
// "Divergence checks"); the Python twin is cowrite/client/checksum.py.
//
// textChecksum: CRC-32 (zlib's) of the text's UTF-8 bytes, a lone surrogate counting as U+FFFD
// (what TextEncoder does; Python's cowrite.protocol.text_checksum does the same), so a JavaScript
// string and a Python str of the same code points agree. tests/checksum_vectors.json holds the
// shared test vectors.

import { textOf } from "./rope.js";

const TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

const encoder = new TextEncoder();

/** CRC-32 of the UTF-8 encoding of `text` (an unsigned 32-bit integer). */
export function textChecksum(text) {
  const bytes = encoder.encode(text);
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
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
