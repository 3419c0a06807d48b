// ParcelProof proof-bundle verifier for browsers and Node 20 (an ES module, no build step).
//
// Implements docs/proof-bundle.md check for check like backend/parcelproof/core/bundle.py:
// same check names, same order, same pass/fail. `verifyBundle(bundle, ledger)` throws
// FormatError for unusable input and ChainError when the ledger cannot be read; every other
// problem is a failed check in the returned report {ok, complete, checks}. An erased event
// (`"erased": true`) has its commitment check skipped (ERASED), as in Python.
import { Interface, TypedDataEncoder, getAddress, recoverAddress } from './vendor/ethers.min.js';

const FORMAT = 'parcelproof-bundle';
const MAX_LOGS = 16;
const MAX_EVENTS_PER_LOG = 1024;
const MAX_LIST = 64; // revealed fields, withheld digests and proof hashes per event
const MAX_NAME_LENGTH = 64;
const MAX_DEPTH = 32;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const ZERO32 = '0x' + '00'.repeat(32);
const OFFERED = 'handoff_offered';
const ACCEPTED = 'handoff_accepted';
export const OFFLINE = 'offline: not read from the chain';
export const PENDING = 'pending: not yet in an anchored checkpoint, so nothing on chain vouches for it yet';
export const ERASED = "erased: the courier destroyed this event's fields and salts (crypto-shredding), " +
  'so what it committed to can no longer be shown';

/** The input is not a well-formed version-1 bundle: nothing can be concluded from it. */
export class FormatError extends Error {
  name = 'FormatError';
}
/** The ParcelLedger contract reverted (e.g. ParcelLedgerUnknownCheckpoint). */
export class ContractRevertError extends Error {
  name = 'ContractRevertError';
}
/** The chain could not be read, or is not the one expected: nothing can be concluded. */
export class ChainError extends Error {
  name = 'ChainError';
}
class CheckFailed extends Error {}

// --- bytes -------------------------------------------------------------------------------

const utf8 = new TextEncoder();
const toHex = (bytes) => '0x' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
const fromHex = (hex) => Uint8Array.from(hex.slice(2).match(/../g) ?? [], (h) => parseInt(h, 16));
const short = (hex32) => hex32.slice(0, 18) + '…';

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes));
}

function b64urlEncode(bytes) {
  const b64 = btoa(String.fromCharCode(...bytes));
  return b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function b64urlDecode(text, what) {
  if (typeof text !== 'string') throw new FormatError(`${what} must be a base64url string`);
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new FormatError(`${what} is not unpadded base64url`);
  }
  const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const raw = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  if (b64urlEncode(raw) !== text) {
    throw new FormatError(`${what} is not canonical base64url (non-zero trailing bits)`);
  }
  return raw;
}

// --- RFC 8785 canonical JSON for the values a field may hold -----------------------------

/** RFC 8785 JCS of strings, safe integers, booleans, null, arrays and objects (no floats). */
export function jcs(value) {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return String(value);
    case 'string':
      if (!value.isWellFormed()) throw new FormatError('string is not valid Unicode (lone surrogate)');
      return JSON.stringify(value); // ECMAScript escaping is the one RFC 8785 prescribes
    case 'number':
      if (!Number.isSafeInteger(value)) throw new FormatError(`${value} is not an integer within ±(2^53 - 1)`);
      return JSON.stringify(value); // -0 becomes 0
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
      // Array#sort compares UTF-16 code units, the order RFC 8785 §3.2.3 requires.
      const keys = Object.keys(value).sort();
      return `{${keys.map((k) => `${jcs(k)}:${jcs(value[k])}`).join(',')}}`;
    }
    default:
      throw new FormatError(`${typeof value} is not a JSON value`);
  }
}

// --- strict parsing (unknown keys, wrong types or lengths: FormatError) -------------------

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function expectKeys(obj, where, required, optional = []) {
  if (!isObject(obj)) throw new FormatError(`${where} must be an object`);
  const keys = Object.keys(obj);
  const missing = required.filter((k) => !keys.includes(k)).sort();
  if (missing.length) throw new FormatError(`${where} lacks ${missing.join(', ')}`);
  const extra = keys.filter((k) => !required.includes(k) && !optional.includes(k)).sort();
  if (extra.length) throw new FormatError(`${where} has unknown keys ${extra.join(', ')}`);
  return obj;
}

function uint64(value, where) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= 2 ** 64) {
    throw new FormatError(`${where} must be an integer in [0, 2^64)`);
  }
  if (!Number.isSafeInteger(value)) {
    throw new FormatError(`${where} is beyond 2^53 - 1, which JSON numbers cannot carry exactly here`);
  }
  return value;
}

function list(value, where, limit) {
  if (!Array.isArray(value)) throw new FormatError(`${where} must be a list`);
  if (value.length > limit) throw new FormatError(`${where} has ${value.length} entries, at most ${limit} allowed`);
  return value;
}

/** 0x-prefixed hex of exactly `size` bytes, returned lower-case. */
function parseHex(value, where, size) {
  if (typeof value !== 'string' || !value.startsWith('0x')) {
    throw new FormatError(`${where} must be a 0x-prefixed hex string`);
  }
  if (!/^0x([0-9a-fA-F]{2})*$/.test(value)) throw new FormatError(`${where} is not valid hex`);
  const length = (value.length - 2) / 2;
  if (length !== size) throw new FormatError(`${where} has ${length} bytes, want ${size}`);
  return value.toLowerCase();
}

const parseAddress = (value, where) => getAddress(parseHex(value, where, 20));

function plainJson(value, where, depth) {
  if (depth > MAX_DEPTH) throw new FormatError(`${where} is nested deeper than ${MAX_DEPTH} levels`);
  if (value === null || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new FormatError(`${where}: floating-point numbers are not allowed (${value})`);
    if (!Number.isSafeInteger(value)) {
      throw new FormatError(`${where}: integer ${value} outside the JSON-safe range ±(2^53 - 1)`);
    }
  } else if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new FormatError(`${where} is not valid Unicode (lone surrogate)`);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => plainJson(v, `${where}[${i}]`, depth + 1));
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (!k.isWellFormed()) throw new FormatError(`${where} key is not valid Unicode (lone surrogate)`);
      plainJson(v, `${where}.${k}`, depth + 1);
    }
  } else {
    throw new FormatError(`${where}: ${typeof value} is not a JSON value`);
  }
}

function parseOpening(obj, where) {
  if (!isObject(obj)) throw new FormatError(`${where}: field opening must be an object`);
  expectKeys(obj, `${where} (field opening)`, ['name', 'value', 'salt']);
  const { name, value } = obj;
  if (typeof name !== 'string') throw new FormatError(`${where}: field opening name must be a string`);
  const salt = b64urlDecode(obj.salt, `salt of field '${name}'`);
  const length = [...name].length; // code points, as Python counts
  if (length < 1 || length > MAX_NAME_LENGTH) {
    throw new FormatError(`field name must have 1 to ${MAX_NAME_LENGTH} characters`);
  }
  if (!name.isWellFormed()) throw new FormatError('field name is not valid Unicode (lone surrogate)');
  if (salt.length !== 32) throw new FormatError(`salt of field '${name}' has ${salt.length} bytes, want 32`);
  plainJson(value, `field '${name}'`, 0);
  return { name, value, salt };
}

const EVENT_KEYS = ['sequence', 'previous', 'commitment', 'revealed', 'withheld', 'eventTime',
  'agent', 'signature', 'leafIndex', 'inclusionProof'];

function parseEvent(obj, where) {
  const o = expectKeys(obj, where, EVENT_KEYS, ['erased']);
  const erased = Object.hasOwn(o, 'erased');
  if (erased && o.erased !== true) throw new FormatError(`${where}.erased must be true when present`);
  const revealed = list(o.revealed, `${where}.revealed`, MAX_LIST)
    .map((f, i) => parseOpening(f, `${where}.revealed[${i}]`));
  const withheld = list(o.withheld, `${where}.withheld`, MAX_LIST)
    .map((d, i) => parseHex(d, `${where}.withheld[${i}]`, 32));
  if (erased && (revealed.length || withheld.length)) {
    throw new FormatError(`${where}: an erased event reveals no field and withholds no digest`);
  }
  const sequence = uint64(o.sequence, `${where}.sequence`);
  const previous = parseHex(o.previous, `${where}.previous`, 32);
  let leafIndex = null;
  let proof = null;
  if (o.inclusionProof === null) {
    if (o.leafIndex !== null) throw new FormatError(`${where}: leafIndex without inclusionProof`);
  } else {
    leafIndex = uint64(o.leafIndex, `${where}.leafIndex`);
    proof = list(o.inclusionProof, `${where}.inclusionProof`, MAX_LIST)
      .map((h, i) => parseHex(h, `${where}.inclusionProof[${i}]`, 32));
  }
  return {
    sequence, previous, revealed, withheld, leafIndex, proof, erased,
    commitment: parseHex(o.commitment, `${where}.commitment`, 32),
    eventTime: uint64(o.eventTime, `${where}.eventTime`),
    agent: parseAddress(o.agent, `${where}.agent`),
    signature: parseHex(o.signature, `${where}.signature`, 65),
  };
}

/** Earlier checkpoints of a log: sizes grow and stay below the log's checkpoint. */
function parseEarlier(value, where, size) {
  const found = [];
  list(value, where, MAX_LOGS).forEach((item, i) => {
    const e = expectKeys(item, `${where}[${i}]`, ['size', 'root', 'consistencyProof']);
    const earlier = {
      size: uint64(e.size, `${where}[${i}].size`),
      root: parseHex(e.root, `${where}[${i}].root`, 32),
      proof: list(e.consistencyProof, `${where}[${i}]`, MAX_LIST)
        .map((h, j) => parseHex(h, `${where}[${i}].consistencyProof[${j}]`, 32)),
    };
    const last = found.length ? found[found.length - 1].size : 0;
    if (!(earlier.size > 0 && earlier.size < size && earlier.size > last)) {
      throw new FormatError(`${where}[${i}].size must grow and stay below the checkpoint's`);
    }
    found.push(earlier);
  });
  return found;
}

/** Parse a decoded JSON bundle strictly; FormatError on anything off. */
export function parseBundle(obj) {
  const o = expectKeys(obj, 'bundle', ['format', 'version', 'chain', 'logs']);
  if (o.format !== FORMAT) throw new FormatError(`bundle.format must be '${FORMAT}'`);
  if (o.version !== 1) {
    throw new FormatError(`unsupported bundle version ${JSON.stringify(o.version)}, this verifier reads 1`);
  }
  const chain = expectKeys(o.chain, 'bundle.chain', ['chainId', 'ledger']);
  const seen = new Set();
  const logs = list(o.logs, 'bundle.logs', MAX_LOGS).map((lo, i) => {
    const where = `bundle.logs[${i}]`;
    const lg = expectKeys(lo, where, ['logId', 'shipment', 'checkpoint', 'events'], ['earlier']);
    const logId = parseHex(lg.logId, `${where}.logId`, 32);
    if (seen.has(logId)) throw new FormatError(`${where}: log ${logId} appears twice`);
    seen.add(logId);
    const shipment = parseHex(lg.shipment, `${where}.shipment`, 32);
    const cp = expectKeys(lg.checkpoint, `${where}.checkpoint`, ['size', 'root']);
    const events = list(lg.events, `${where}.events`, MAX_EVENTS_PER_LOG)
      .map((e, j) => parseEvent(e, `${where}.events[${j}]`));
    if (!events.length) throw new FormatError(`${where} has no events`);
    const size = uint64(cp.size, `${where}.checkpoint.size`);
    return {
      logId, shipment, events, size,
      root: parseHex(cp.root, `${where}.checkpoint.root`, 32),
      earlier: parseEarlier(lg.earlier ?? [], `${where}.earlier`, size),
    };
  });
  if (!logs.length) throw new FormatError('bundle.logs is empty');
  const chainId = uint64(chain.chainId, 'bundle.chain.chainId');
  const ledger = parseAddress(chain.ledger, 'bundle.chain.ledger');
  if (chainId < 1) throw new FormatError(`chain id ${chainId} outside [1, 2^256)`);
  return { chainId, ledger, logs };
}

// --- commitments (docs/proof-bundle.md "Field digests", "Event commitment") ---------------

async function fieldDigest({ salt, name, value }) {
  return toHex(await sha256(utf8.encode(jcs([b64urlEncode(salt), name, value]))));
}

function revealedFields(event) {
  const fields = new Map();
  for (const { name, value } of event.revealed) {
    if (fields.has(name)) throw new FormatError(`field '${name}' is revealed twice`);
    fields.set(name, value);
  }
  return fields;
}

async function eventCommitment(logId, shipment, event) {
  revealedFields(event);
  const { sequence, previous } = event;
  if (sequence === 0 && previous !== ZERO32) {
    throw new FormatError('event #0 starts the chain: its previous must be 32 zero bytes');
  }
  if (sequence !== 0 && previous === ZERO32) {
    throw new FormatError(`event #${sequence} must link to a previous commitment, not zero`);
  }
  const digests = [...(await Promise.all(event.revealed.map(fieldDigest))), ...event.withheld];
  if (!digests.length) throw new FormatError('an event commits to at least one field digest');
  digests.sort(); // lower-case hex of equal length: string order is byte order
  digests.forEach((d, i) => {
    if (i && d === digests[i - 1]) throw new FormatError(`field digest ${d.slice(2)} appears twice`);
  });
  const numbers = new DataView(new ArrayBuffer(10));
  numbers.setBigUint64(0, BigInt(sequence));
  numbers.setUint16(8, digests.length);
  const bytes = new Uint8Array(numbers.buffer);
  return toHex(await sha256(concat(utf8.encode('parcelproof:event:v1'), [0], fromHex(logId), fromHex(shipment),
    bytes.subarray(0, 8), fromHex(previous), bytes.subarray(8), ...digests.map(fromHex))));
}

// --- RFC 9162 inclusion (after transparency-dev/merkle) ----------------------------------

const leafHash = async (commitment) => toHex(await sha256(concat([0], fromHex(commitment))));
const nodeHash = async (left, right) => toHex(await sha256(concat([1], fromHex(left), fromHex(right))));
const bitLength = (n) => (n === 0n ? 0 : n.toString(2).length);
const popCount = (n) => n.toString(2).replace(/0/g, '').length;

/** The root an audit path implies; CheckFailed for an index outside the tree or a wrong length. */
export async function rootFromInclusionProof(index, size, leaf, proof) {
  const i = BigInt(index);
  const n = BigInt(size);
  if (i >= n) throw new CheckFailed(`leaf index ${index} is beyond tree size ${size}`);
  const inner = bitLength(i ^ (n - 1n));
  const want = inner + popCount(i >> BigInt(inner));
  if (proof.length !== want) throw new CheckFailed(`proof has ${proof.length} hashes, want ${want}`);
  let hash = leaf;
  for (let k = 0; k < want; k++) {
    const left = k >= inner || (i >> BigInt(k)) & 1n;
    hash = left ? await nodeHash(proof[k], hash) : await nodeHash(hash, proof[k]);
  }
  return hash;
}

/** RFC 9162 consistency from (size1, root1) to (size2, root2); CheckFailed otherwise. */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  const m = BigInt(size1);
  const n = BigInt(size2);
  if (m === 0n) throw new CheckFailed('a consistency proof from the empty tree proves nothing');
  if (n < m) throw new CheckFailed(`size2 (${size2}) < size1 (${size1})`);
  if (m === n) {
    if (proof.length) throw new CheckFailed('size1 == size2 but the proof is not empty');
    if (root1 !== root2) throw new CheckFailed('root mismatch');
    return;
  }
  if (!proof.length) throw new CheckFailed('empty consistency proof');
  let inner = bitLength((m - 1n) ^ (n - 1n));
  const border = popCount((m - 1n) >> BigInt(inner));
  const shift = bitLength(m & -m) - 1;
  inner -= shift;
  let seed = proof[0];
  let start = 1;
  if (m === 1n << BigInt(shift)) { seed = root1; start = 0; }
  const rest = proof.slice(start);
  if (rest.length !== inner + border) {
    throw new CheckFailed(`proof has ${rest.length} hashes, want ${inner + border}`);
  }
  const mask = (m - 1n) >> BigInt(shift);
  let hash1 = seed;
  let hash2 = seed;
  for (let k = 0; k < inner; k++) {
    if ((mask >> BigInt(k)) & 1n) {
      hash1 = await nodeHash(rest[k], hash1);
      hash2 = await nodeHash(rest[k], hash2);
    } else {
      hash2 = await nodeHash(hash2, rest[k]);
    }
  }
  for (let k = inner; k < rest.length; k++) {
    hash1 = await nodeHash(rest[k], hash1);
    hash2 = await nodeHash(rest[k], hash2);
  }
  if (hash1 !== root1) throw new CheckFailed(`first root mismatch: calculated ${hash1.slice(2)}`);
  if (hash2 !== root2) throw new CheckFailed(`second root mismatch: calculated ${hash2.slice(2)}`);
}

// --- EIP-712 signatures (docs/proof-bundle.md "Signature") -------------------------------

const EVENT_TYPES = {
  ParcelEvent: [
    { name: 'logId', type: 'bytes32' }, { name: 'shipment', type: 'bytes32' },
    { name: 'sequence', type: 'uint64' }, { name: 'commitment', type: 'bytes32' },
    { name: 'eventTime', type: 'uint64' },
  ],
};
const HANDOFF_TYPES = {
  ParcelHandoff: [
    { name: 'handoffId', type: 'bytes32' }, { name: 'fromLog', type: 'bytes32' },
    { name: 'fromShipment', type: 'bytes32' }, { name: 'toLog', type: 'bytes32' },
    { name: 'toShipment', type: 'bytes32' }, { name: 'handoffTime', type: 'uint64' },
  ],
};

/** Check EIP-2 form (v 27/28, low s) and that `signature` over `digest` recovers to `expected`. */
function verifySigner(digest, signature, expected) {
  const r = BigInt(signature.slice(0, 66));
  const s = BigInt('0x' + signature.slice(66, 130));
  const v = parseInt(signature.slice(130), 16);
  if (v !== 27 && v !== 28) throw new CheckFailed(`signature v is ${v}, want 27 or 28`);
  if (r < 1n || r >= SECP256K1_N) throw new CheckFailed('signature r is outside [1, n)');
  if (s < 1n || s >= SECP256K1_N) throw new CheckFailed('signature s is outside [1, n)');
  if (s > SECP256K1_N / 2n) throw new CheckFailed('signature s is in the upper half of the curve order (malleable)');
  let recovered;
  try {
    recovered = recoverAddress(digest, { r: signature.slice(0, 66), s: '0x' + signature.slice(66, 130), v });
  } catch {
    throw new CheckFailed('signature does not recover to any public key');
  }
  if (recovered.toLowerCase() !== expected.toLowerCase()) {
    throw new CheckFailed(`signature was made by ${recovered}, expected ${getAddress(expected)}`);
  }
}

/** The countersigned handoff an event's revealed fields describe; null for other events. */
function parseHandoff(logId, shipment, status, fields) {
  if (status !== OFFERED && status !== ACCEPTED) return null;
  const field = (name, size) => parseHex(fields.get(name), `handoff field '${name}'`, size);
  const other = field(status === OFFERED ? 'handoff_to' : 'handoff_from', 32);
  const when = fields.get('handoff_time');
  if (typeof when !== 'number' || !Number.isInteger(when)) {
    throw new FormatError("handoff field 'handoff_time' must be an integer");
  }
  const handoffId = field('handoff_id', 32);
  const theirs = field('counterparty_shipment', 32);
  if (other === logId) throw new FormatError('a handoff needs two different couriers');
  if (when < 0) throw new FormatError(`handoff time ${when} outside [0, 2^64)`);
  return {
    message: {
      handoffId,
      fromLog: status === OFFERED ? logId : other,
      fromShipment: status === OFFERED ? shipment : theirs,
      toLog: status === OFFERED ? other : logId,
      toShipment: status === OFFERED ? theirs : shipment,
      handoffTime: when,
    },
    counterpartyLog: other,
    agent: getAddress(field('counterparty_agent', 20)),
    signature: field('counterparty_signature', 65),
  };
}

// --- verification (docs/proof-bundle.md "Verification") ----------------------------------

class Report {
  checks = [];
  add(name, subject, ok, detail = '') {
    this.checks.push({ name, subject, ok, detail });
  }
  skip(name, subject, detail) {
    this.checks.push({ name, subject, ok: true, detail, skipped: true });
  }
  toJSON() {
    return {
      ok: this.checks.length > 0 && this.checks.every((c) => c.ok),
      complete: !this.checks.some((c) => c.skipped),
      checks: this.checks,
    };
  }
}

/** Run `fn`; report its check as passed with the detail it returns, or failed with the reason. */
async function run(report, name, subject, fn) {
  try {
    report.add(name, subject, true, (await fn()) ?? '');
  } catch (e) {
    if (!(e instanceof CheckFailed || e instanceof FormatError)) throw e;
    report.add(name, subject, false, e.message);
  }
}

/**
 * Verify a proof bundle (decoded JSON) against a ledger view ({chainId, address,
 * checkpointRoot, isAgentKeyValid}); `ledger = null` runs offline and reports every check that
 * needs the chain as skipped. Returns {ok, complete, checks: [{name, subject, ok, detail}]}.
 */
export async function verifyBundle(bundle, ledger) {
  const b = parseBundle(bundle);
  const report = new Report();
  const subject = `chain ${b.chainId} contract ${b.ledger}`;
  if (ledger === null) {
    report.skip('ledger', subject, OFFLINE);
  } else {
    const same = b.chainId === Number(ledger.chainId) && b.ledger.toLowerCase() === ledger.address.toLowerCase();
    report.add('ledger', subject, same, same ? '' : `verifier reads chain ${ledger.chainId} at ${ledger.address}`);
  }
  const domain = { name: 'ParcelProof', version: '1', chainId: b.chainId, verifyingContract: b.ledger };
  const commitments = new Set(b.logs.flatMap((lg) => lg.events.map((e) => e.commitment)));
  for (const lg of b.logs) await verifyLog(lg, domain, ledger, report);
  for (const lg of b.logs) await verifyHandoffs(lg, commitments, domain, ledger, report);
  return report.toJSON();
}

async function verifyLog(lg, domain, ledger, report) {
  const log = short(lg.logId);
  const cpSubject = `log ${log} size ${lg.size}`;
  if (ledger === null) {
    report.skip('checkpoint', cpSubject, OFFLINE);
  } else {
    await run(report, 'checkpoint', cpSubject, async () => {
      let anchored;
      try {
        anchored = (await ledger.checkpointRoot(lg.logId, lg.size)).toLowerCase();
      } catch (e) {
        if (e instanceof ContractRevertError) throw new CheckFailed(e.message);
        throw e;
      }
      if (anchored !== lg.root) throw new CheckFailed(`ledger holds ${anchored} for that size`);
    });
  }
  for (const earlier of lg.earlier) {
    const subject = `log ${log} size ${earlier.size}`;
    if (ledger === null) {
      report.skip('checkpoint', subject, OFFLINE);
    } else {
      await run(report, 'checkpoint', subject, async () => {
        let anchored;
        try {
          anchored = (await ledger.checkpointRoot(lg.logId, earlier.size)).toLowerCase();
        } catch (e) {
          if (e instanceof ContractRevertError) throw new CheckFailed(e.message);
          throw e;
        }
        if (anchored !== earlier.root) throw new CheckFailed('the ledger holds another root for that size');
      });
    }
    await run(report, 'consistency', `log ${log} size ${earlier.size} → ${lg.size}`, async () => {
      await verifyConsistency(earlier.size, lg.size, earlier.root, lg.root, earlier.proof);
      return 'the later checkpoint extends the earlier one';
    });
  }
  let previous = ZERO32;
  let expected = 0;
  for (const ev of lg.events) {
    const subject = `log ${log} event #${ev.sequence}`;
    const linked = ev.sequence === expected && ev.previous === previous;
    report.add('hash-chain', subject, linked, linked ? '' : `expected sequence ${expected} after ${short(previous)}`);
    previous = ev.commitment;
    expected = ev.sequence + 1;
    if (ev.erased) {
      report.skip('commitment', subject, ERASED); // nothing left to open the commitment with
    } else {
      await run(report, 'commitment', subject, async () => {
        const calculated = await eventCommitment(lg.logId, lg.shipment, ev);
        if (calculated !== ev.commitment) {
          throw new CheckFailed(`event #${ev.sequence} commitment mismatch: ` +
            `expected ${ev.commitment.slice(2)}, calculated ${calculated.slice(2)}`);
        }
        const shown = ev.revealed.find((f) => f.name === 'time');
        if (shown !== undefined && shown.value !== ev.eventTime) {
          throw new CheckFailed(`the revealed time ${JSON.stringify(shown.value)} differs from the signed eventTime`);
        }
      });
    }
    await run(report, 'signature', subject, () => {
      const { sequence, commitment, eventTime } = ev;
      const message = { logId: lg.logId, shipment: lg.shipment, sequence, commitment, eventTime };
      verifySigner(TypedDataEncoder.hash(domain, EVENT_TYPES, message), ev.signature, ev.agent);
    });
    if (ledger === null) {
      report.skip('agent-key', subject, OFFLINE);
    } else {
      const valid = await ledger.isAgentKeyValid(lg.logId, ev.agent, ev.eventTime);
      report.add('agent-key', subject, valid, valid ? '' : `${ev.agent} was not a valid key of this courier then`);
    }
    if (ev.proof === null) {
      report.skip('inclusion', subject, PENDING);
      continue;
    }
    await run(report, 'inclusion', subject, async () => {
      const root = await rootFromInclusionProof(ev.leafIndex, lg.size, await leafHash(ev.commitment), ev.proof);
      if (root !== lg.root) {
        throw new CheckFailed(`root mismatch: expected ${lg.root.slice(2)}, calculated ${root.slice(2)}`);
      }
      return `leaf ${ev.leafIndex}`;
    });
  }
}

async function verifyHandoffs(lg, commitments, domain, ledger, report) {
  for (const ev of lg.events) {
    let fields;
    try {
      fields = revealedFields(ev);
    } catch {
      continue; // already reported by the commitment check
    }
    const subject = `log ${short(lg.logId)} event #${ev.sequence}`;
    const ref = fields.get('handoff_of');
    if (typeof ref === 'string') {
      const ok = commitments.has(ref.toLowerCase()) && /^0x[0-9a-fA-F]{64}$/.test(ref);
      report.add('handoff', subject, ok, ok ? '' : 'the offered event is not in the bundle');
    }
    if (fields.has('counterparty_signature')) {
      await verifyCountersignature(lg.logId, lg.shipment, fields, subject, domain, ledger, report);
    }
  }
}

async function verifyCountersignature(logId, shipment, fields, subject, domain, ledger, report) {
  let signed;
  try {
    const status = fields.get('status');
    signed = parseHandoff(logId, shipment, typeof status === 'string' ? status : null, fields);
    if (signed === null) throw new FormatError('a countersignature on an event that is not a handoff');
    verifySigner(TypedDataEncoder.hash(domain, HANDOFF_TYPES, signed.message), signed.signature, signed.agent);
  } catch (e) {
    if (!(e instanceof CheckFailed || e instanceof FormatError)) throw e;
    report.add('handoff-countersignature', subject, false, e.message);
    return;
  }
  if (ledger === null) {
    report.skip('handoff-countersignature', subject, `signature valid; key window ${OFFLINE}`);
    return;
  }
  const valid = await ledger.isAgentKeyValid(signed.counterpartyLog, signed.agent, signed.message.handoffTime);
  report.add('handoff-countersignature', subject, valid, valid
    ? `signed by ${signed.agent} for ${short(signed.counterpartyLog)}`
    : `${signed.agent} was not a valid key of the counterparty then`);
}

// --- erasure receipts (docs/privacy.md "Erasure receipt format") -------------------------

const ERASURE_TYPES = {
  ParcelErasure: [
    { name: 'logId', type: 'bytes32' }, { name: 'shipment', type: 'bytes32' },
    { name: 'eventCount', type: 'uint64' }, { name: 'lastCommitment', type: 'bytes32' },
    { name: 'erasedAt', type: 'uint64' }, { name: 'reason', type: 'string' },
  ],
};

/** Parse an erasure receipt (decoded JSON) strictly; FormatError on anything off. */
export function parseErasureReceipt(obj) {
  const o = expectKeys(obj, 'receipt', ['format', 'version', 'chain', 'erasure', 'signer', 'signature']);
  if (o.format !== 'parcelproof-erasure-receipt') {
    throw new FormatError("receipt.format must be 'parcelproof-erasure-receipt'");
  }
  if (o.version !== 1) throw new FormatError(`unsupported receipt version ${JSON.stringify(o.version)}, this reader reads 1`);
  const chain = expectKeys(o.chain, 'receipt.chain', ['chainId', 'ledger']);
  const e = expectKeys(o.erasure, 'receipt.erasure',
    ['logId', 'shipment', 'eventCount', 'lastCommitment', 'erasedAt', 'reason']);
  if (typeof e.reason !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(e.reason)) {
    throw new FormatError('erasure reason must be 1-32 lower-case letters, digits or hyphens, starting with a letter');
  }
  const erasure = {
    logId: parseHex(e.logId, 'receipt.erasure.logId', 32),
    shipment: parseHex(e.shipment, 'receipt.erasure.shipment', 32),
    eventCount: uint64(e.eventCount, 'receipt.erasure.eventCount'),
    lastCommitment: parseHex(e.lastCommitment, 'receipt.erasure.lastCommitment', 32),
    erasedAt: uint64(e.erasedAt, 'receipt.erasure.erasedAt'),
    reason: e.reason,
  };
  if ((erasure.eventCount === 0) !== (erasure.lastCommitment === ZERO32)) {
    throw new FormatError('the last commitment is zero exactly when there was no event');
  }
  const chainId = uint64(chain.chainId, 'receipt.chain.chainId');
  if (chainId < 1) throw new FormatError(`chain id ${chainId} outside [1, 2^256)`);
  return {
    chainId,
    ledger: parseAddress(chain.ledger, 'receipt.chain.ledger'),
    erasure,
    signer: parseAddress(o.signer, 'receipt.signer'),
    signature: parseHex(o.signature, 'receipt.signature', 65),
  };
}

/**
 * Verify an erasure receipt: its EIP-712 `ParcelErasure` signature recovers to `signer` and,
 * with a ledger view that has `courierAccount(logId)`, `signer` is the courier's anchoring
 * account on the chain and contract the receipt names. Returns {ok, complete, detail,
 * receipt}: `complete` is false when only the signature was checked (no ledger). Throws
 * FormatError for a malformed receipt, ChainError when the chain cannot be read.
 */
export async function verifyErasureReceipt(obj, ledger = null) {
  const r = parseErasureReceipt(obj);
  const domain = { name: 'ParcelProof', version: '1', chainId: r.chainId, verifyingContract: r.ledger };
  try {
    verifySigner(TypedDataEncoder.hash(domain, ERASURE_TYPES, r.erasure), r.signature, r.signer);
  } catch (e) {
    if (!(e instanceof CheckFailed)) throw e;
    return { ok: false, complete: ledger !== null, detail: e.message, receipt: r };
  }
  if (ledger === null) return { ok: true, complete: false, detail: `signed by ${r.signer}; ${OFFLINE}`, receipt: r };
  if (r.chainId !== Number(ledger.chainId) || r.ledger.toLowerCase() !== ledger.address.toLowerCase()) {
    return { ok: false, complete: true, receipt: r,
      detail: `the receipt names chain ${r.chainId} contract ${r.ledger}, the ledger read is chain ${ledger.chainId} contract ${ledger.address}` };
  }
  let account;
  try {
    account = await ledger.courierAccount(r.erasure.logId);
  } catch (e) {
    if (!(e instanceof ContractRevertError)) throw e;
    return { ok: false, complete: true, detail: `the ledger does not know the receipt's courier: ${e.message}`, receipt: r };
  }
  const ok = account.toLowerCase() === r.signer.toLowerCase();
  return { ok, complete: true, receipt: r, detail: ok ? `signed by ${r.signer}, the courier's anchoring account`
    : `the receipt is signed by ${r.signer}, but the ledger's anchoring account of courier ${r.erasure.logId} is ${account}` };
}

// --- ledger views ------------------------------------------------------------------------

/**
 * A ledger view made of recorded facts (test vectors, archives), answered with the contract's
 * rules: {chainId, ledger, checkpoints: [{logId, size, root}], agentKeys: [{agent, courierId,
 * validFrom, validUntil, revokedAt}]}. It proves nothing by itself.
 */
export function snapshotLedger(snapshot) {
  const roots = new Map(snapshot.checkpoints.map((c) => [`${c.logId.toLowerCase()}:${c.size}`, c.root.toLowerCase()]));
  const keys = new Map(snapshot.agentKeys.map((k) => [k.agent.toLowerCase(), k]));
  return {
    chainId: snapshot.chainId,
    address: getAddress(snapshot.ledger),
    async checkpointRoot(logId, size) {
      const root = roots.get(`${logId.toLowerCase()}:${size}`);
      if (root === undefined) throw new ContractRevertError(`ParcelLedgerUnknownCheckpoint(${logId}, ${size})`);
      return root;
    },
    async isAgentKeyValid(logId, agent, at) {
      const k = keys.get(agent.toLowerCase());
      if (!k || k.courierId.toLowerCase() !== logId.toLowerCase()) return false;
      if (!(k.validFrom <= at && at < k.validUntil)) return false;
      return k.revokedAt === null || at < k.revokedAt;
    },
  };
}

export const LEDGER_ABI = [
  'function checkpointRoot(bytes32 courierId, uint64 size) view returns (bytes32 root)',
  'function courier(bytes32 courierId) view returns ((address account, uint64 admittedAt, uint64 removedAt, bool active, uint64 checkpointCount, uint64 latestSize, uint64 latestAnchoredAt))',
  'function isAgentKeyValid(bytes32 courierId, address agent, uint64 at) view returns (bool)',
  'error ParcelLedgerUnknownCheckpoint(bytes32 courierId, uint64 size)',
  'error ParcelLedgerUnknownCourier(bytes32 courierId)',
];

/** The revert data in a JSON-RPC error, if the error is a revert (nodes differ in shape). */
function revertData(error) {
  const data = isObject(error.data) ? error.data.data : error.data;
  if (typeof data === 'string' && /^0x([0-9a-fA-F]{2})*$/.test(data)) return data;
  if (error.code === 3 || /revert/i.test(String(error.message))) return '0x';
  return undefined;
}

/**
 * The ParcelLedger contract at `address` on chain `chainId`, read with JSON-RPC `eth_call`
 * at `rpcUrl`. The node must serve that chain id (checked once); a revert is a
 * ContractRevertError, anything else that goes wrong a ChainError.
 */
export function rpcLedger(rpcUrl, chainId, address, { timeoutMs = 15000, fetch = globalThis.fetch } = {}) {
  const iface = new Interface(LEDGER_ABI);
  let nextId = 0;
  let chainChecked;

  async function rpc(method, params) {
    let body;
    try {
      const response = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: ++nextId, method, params }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      body = await response.json();
    } catch (e) {
      throw new ChainError(`cannot read the chain at ${rpcUrl}: ${e.message}`);
    }
    return body;
  }

  async function call(fn, args) {
    chainChecked ??= rpc('eth_chainId', []).then(({ result, error }) => {
      if (error || typeof result !== 'string') throw new ChainError(`${rpcUrl} did not tell its chain id`);
      if (BigInt(result) !== BigInt(chainId)) {
        throw new ChainError(`${rpcUrl} serves chain ${BigInt(result)}, not ${chainId}`);
      }
    });
    await chainChecked;
    const { result, error } = await rpc('eth_call', [{ to: address, data: iface.encodeFunctionData(fn, args) }, 'latest']);
    if (error) {
      const data = revertData(error);
      if (data === undefined) throw new ChainError(`eth_call ${fn} failed: ${error.message}`);
      const parsed = data.length >= 10 ? iface.parseError(data) : null;
      const shown = parsed ? `${parsed.name}(${parsed.args.map(String).join(', ')})` : `reverted ${data}`;
      throw new ContractRevertError(shown);
    }
    if (result === '0x') throw new ChainError(`no ParcelLedger contract at ${address} on chain ${chainId}`);
    return iface.decodeFunctionResult(fn, result)[0];
  }

  return {
    chainId,
    address: getAddress(address),
    rpcUrl,
    checkpointRoot: async (logId, size) => String(await call('checkpointRoot', [logId, size])).toLowerCase(),
    isAgentKeyValid: async (logId, agent, at) => Boolean(await call('isAgentKeyValid', [logId, agent, at])),
    courierAccount: async (logId) => getAddress(String((await call('courier', [logId]))[0])),
  };
}
