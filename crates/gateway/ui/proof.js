// Inclusion of one audit-log entry, verified in the browser with WebCrypto alone
// (docs/audit.md): a c2sp.org/tlog-proof@v1 whose checkpoint is a C2SP signed note, Ed25519,
// checked against the log's verifier key (`<name>+<hex key id>+<base64(0x01 ‖ key)>`), and an
// RFC 9162 §2.1.3.2 inclusion proof from SHA-256(0x00 ‖ entry) to the checkpoint's root.
// The entry is the event's content hash as the server states it; recomputing that hash from
// the event's content is `chaukas verify`'s job (deterministic protobuf encoding).

const text = new TextEncoder();

function base64(s) {
  return Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0));
}

function hex(s) {
  if (!/^[0-9a-f]{64}$/.test(s)) throw new Error("the content hash is not 64 hex digits");
  return Uint8Array.from(s.match(/../g), (b) => parseInt(b, 16));
}

async function sha256(...parts) {
  const length = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(length);
  let at = 0;
  for (const part of parts) { joined.set(part, at); at += part.length; }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/// Checks the note's signature by one of the keys in `keyText` (one per line: two during a
/// rotation); returns the note's body lines.
async function openNote(note, keyText) {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new Error("the checkpoint is not a signed note");
  const body = note.slice(0, split + 1);
  for (const keyLine of keyText.trim().split("\n")) {
    if (await signedBy(note.slice(split + 2), body, keyLine.trim())) return body.split("\n");
  }
  throw new Error("no valid signature by the log's key on the checkpoint");
}

async function signedBy(signatures, body, keyLine) {
  // `<name>+<hex key id>+<base64>`: the base64 may itself contain "+".
  const [name, keyIdHex] = keyLine.split("+", 2);
  const keyB64 = keyLine.slice(name.length + keyIdHex.length + 2);
  const material = base64(keyB64 || "");
  if (material.length !== 33 || material[0] !== 1) throw new Error("the log key is not an Ed25519 key");
  const keyId = Uint8Array.from(keyIdHex.match(/../g) || [], (b) => parseInt(b, 16));
  const key = await crypto.subtle.importKey("raw", material.slice(1), { name: "Ed25519" }, false, ["verify"]);
  for (const line of signatures.split("\n")) {
    const match = line.match(/^\u2014 (\S+) (\S+)$/);
    if (!match || match[1] !== name) continue;
    const blob = base64(match[2]);
    if (!equal(blob.slice(0, 4), keyId)) continue;
    if (await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(4), text.encode(body))) {
      return true;
    }
  }
  return false;
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof leads to.
async function rootFrom(index, size, leaf, path) {
  if (index >= size) throw new Error(`leaf ${index} is not below the checkpoint size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new Error("the proof is longer than the tree");
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(Uint8Array.of(1), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await sha256(Uint8Array.of(1), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the proof is shorter than the tree");
  return r;
}

/// Verifies that `contentHashHex` is leaf `index` of the signed checkpoint in `proofText`;
/// returns the checkpoint's size.
export async function verifyInclusion(proofText, contentHashHex, index, keyText) {
  const split = proofText.indexOf("\n\n");
  const head = proofText.slice(0, split).split("\n");
  if (head[0] !== "c2sp.org/tlog-proof@v1") throw new Error("not a c2sp.org/tlog-proof@v1");
  let at = 1;
  if (head[at] && head[at].startsWith("extra ")) at += 1;
  const proofIndex = Number((head[at] || "").replace(/^index /, ""));
  if (proofIndex !== index) throw new Error(`the proof is for leaf ${proofIndex}, not ${index}`);
  const path = head.slice(at + 1).map(base64);
  const body = await openNote(proofText.slice(split + 2), keyText);
  const size = Number(body[1]);
  const root = base64(body[2]);
  const leaf = await sha256(Uint8Array.of(0), hex(contentHashHex));
  if (!equal(await rootFrom(index, size, leaf, path), root)) throw new Error("the proof does not lead to the signed root");
  return size;
}
