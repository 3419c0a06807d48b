// The customer page: look a parcel up, show its timeline, verify its proof bundle HERE, in the
// browser, against the chain (verifier.js), and verify bundle files dropped on the page.
import {
  ChainError, ERASED, FormatError, rpcLedger, verifyBundle, verifyErasureReceipt,
} from './verifier.js';

const $ = (id) => document.getElementById(id);
const MAX_FILE = 5 * 1024 * 1024;
const ERASED_PROBLEM = 'urn:parcelproof:problem:erased';
const REASONS = { request: 'at the request of the sender or recipient', legal: 'for a legal obligation',
  retention: 'at the end of the retention period' };
const DATE_STYLE = { dateStyle: 'medium', timeStyle: 'short' };
const CHECK_INFO = {
  ledger: 'the bundle names this chain and ledger contract',
  checkpoint: 'the checkpoint root is anchored on the ledger',
  consistency: 'the later checkpoint only extends the earlier one (nothing rewritten)',
  'hash-chain': 'no event is missing, inserted or reordered',
  commitment: 'the values shown are the ones the courier committed to',
  signature: 'signed by the stated agent key',
  'agent-key': "the key was the courier's, and valid at that time",
  inclusion: "the event is in the courier's anchored log",
  handoff: 'the handed-over event is in the bundle',
  'handoff-countersignature': 'the other courier countersigned the handoff',
};
let config = null; // {chainId, ledger, rpcUrl} from GET /v1/config
let configLoaded;
let downloadUrl = null;
let receiptUrl = null;

/** Build an element; children are nodes or text (never parsed as HTML). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== ''));
  return node;
}

const shortId = (hex) => `${hex.slice(0, 6)}…${hex.slice(-4)}`;
const humanize = (status) => String(status ?? 'unknown').replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
// The subject the verifier gives an event's checks (verifier.js, core/bundle.py).
const eventSubject = (logId, sequence) => `log ${logId.toLowerCase().slice(0, 18)}… event #${sequence}`;

function setSummary(state, text) {
  $('summary').dataset.state = state;
  $('summary').textContent = text;
}

// --- chain settings ------------------------------------------------------------------------

async function loadConfig() {
  try {
    const response = await fetch('/v1/config', { headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch {
    config = null;
  }
  const info = $('chain-info');
  if (config?.rpcUrl) {
    info.textContent = `Checks run in this browser against chain ${config.chainId}, ParcelLedger ` +
      `${config.ledger}, read through ${config.rpcUrl}.`;
  } else {
    info.textContent = 'This site gives no public blockchain endpoint, so this browser cannot ' +
      'read the chain: the checks that need it (ledger, checkpoint, agent key, handoff key ' +
      'window) are skipped and shown as such. The other checks still run here.';
    info.classList.add('warning');
  }
}

const ledgerView = () => (config?.rpcUrl ? rpcLedger(config.rpcUrl, config.chainId, config.ledger) : null);

// --- timeline ------------------------------------------------------------------------------

/** Show timeline entries {log_id, sequence, event_time, fields, anchoring, block_number}. */
function showTimeline(entries, heading) {
  $('timeline-heading').textContent = heading;
  $('timeline').replaceChildren(...entries.map(timelineItem));
  $('timeline-section').hidden = entries.length === 0;
}

function timelineItem(t) {
  const f = t.fields ?? {};
  const when = new Date(t.event_time * 1000);
  const anchoring = t.anchoring === 'pending' ? 'pending: not yet on the ledger'
    : t.block_number == null ? t.anchoring : `${t.anchoring} in block ${t.block_number}`;
  const other = f.handoff_to ?? f.handoff_from;
  return el('li', { class: 'event', 'data-anchoring': t.anchoring, 'data-subject': eventSubject(t.log_id, t.sequence) },
    el('time', { datetime: when.toISOString() }, when.toLocaleString(undefined, DATE_STYLE)),
    el('span', { class: 'status' }, t.erased ? 'Details erased' : humanize(f.status)),
    typeof f.place === 'string' ? el('span', { class: 'place' }, f.place) : null,
    typeof other === 'string'
      ? el('span', { class: 'place' }, `${f.handoff_to ? 'to' : 'from'} courier ${shortId(other)}`) : null,
    el('span', { class: 'meta' }, `courier log ${shortId(t.log_id)} · event #${t.sequence} · ${anchoring}`));
}

/** The events a bundle file claims, for display only (verification decides what holds). */
function timelineOf(bundle) {
  try {
    return bundle.logs.flatMap((lg) => lg.events.map((e) => ({
      log_id: lg.logId,
      sequence: e.sequence,
      event_time: e.eventTime,
      fields: Object.fromEntries(e.revealed.map((f) => [f.name, f.value])),
      erased: e.erased === true,
      anchoring: e.inclusionProof ? `in checkpoint of size ${lg.checkpoint.size}` : 'pending',
    }))).filter((t) => typeof t.log_id === 'string' && Number.isSafeInteger(t.event_time))
      .sort((a, b) => a.event_time - b.event_time);
  } catch {
    return [];
  }
}

/** Mark the timeline entries whose checks failed. */
function markTimeline(report) {
  const failed = new Set(report.checks.filter((c) => !c.ok).map((c) => c.subject));
  for (const li of $('timeline').children) {
    if (failed.has(li.dataset.subject)) {
      li.classList.add('unverified');
      li.append(el('span', { class: 'unverified-note' }, '✗ This event does not verify: see the checks below.'));
    }
  }
}

// --- verification --------------------------------------------------------------------------

/** Clear the previous result and say what is being verified now. */
function startResult(source) {
  $('checks').replaceChildren();
  $('source').hidden = false;
  $('source').textContent = source;
}

async function verifyAndShow(bundle, source) {
  startResult(source);
  setSummary('running', 'Verifying in your browser…');
  await configLoaded;
  let report;
  try {
    report = await verifyBundle(bundle, ledgerView());
  } catch (e) {
    if (e instanceof FormatError) setSummary('unusable', `✗ Not a usable proof bundle: ${e.message}`);
    else if (e instanceof ChainError) setSummary('error', `Could not read the chain; nothing concluded: ${e.message}`);
    else setSummary('error', `Verification could not run: ${e.message}`);
    return;
  }
  $('checks').replaceChildren(...checkGroups(report.checks));
  markTimeline(report);
  const failed = report.checks.filter((c) => !c.ok);
  const erased = report.checks.filter((c) => c.skipped && c.detail === ERASED);
  const skipped = report.checks.filter((c) => c.skipped && c.detail !== ERASED);
  const n = report.checks.length - erased.length;
  const gone = erased.length
    ? ` The content of ${erased.length} erased event${erased.length > 1 ? 's' : ''} can no longer be ` +
      'shown or checked: the courier destroyed it.'
    : '';
  if (failed.length) {
    const names = [...new Set(failed.map((c) => c.name))].join(', ');
    setSummary('failed', `✗ Not verified: ${failed.length} of ${n} checks failed (${names}). ` +
      'This evidence was altered or does not match the ledger.');
  } else if (skipped.length) {
    setSummary('partial', `Partly verified: ${n - skipped.length} checks passed in your browser; ` +
      `${skipped.length} checks that need the chain were skipped, so nothing here shows that ` +
      `the events were anchored.${gone}`);
  } else {
    setSummary('verified', `✓ Verified in your browser: all ${n} checks passed against chain ${config.chainId}.${gone}`);
  }
}

/** One list item per subject (the ledger, a log's checkpoint, an event) with its checks. */
function checkGroups(checks) {
  const groups = new Map();
  for (const c of checks) groups.set(c.subject, [...(groups.get(c.subject) ?? []), c]);
  return [...groups].map(([subject, list]) => el('li', { class: 'group' },
    el('p', { class: 'subject' }, subject),
    el('ul', {}, ...list.map(checkItem))));
}

function checkItem(c) {
  const state = c.skipped ? 'skipped' : c.ok ? 'passed' : 'failed';
  const icon = { passed: '✓', failed: '✗', skipped: '–' }[state];
  return el('li', { class: `check ${state}`, 'data-name': c.name, 'data-ok': String(c.ok), 'data-state': state },
    el('span', { class: 'icon', 'aria-hidden': 'true' }, icon),
    el('span', { class: 'what' },
      el('span', { class: 'visually-hidden' }, `${state}: `),
      el('strong', {}, c.name),
      el('span', { class: 'info' }, ` — ${CHECK_INFO[c.name] ?? ''}`),
      c.detail ? el('span', { class: 'detail' }, c.detail) : null));
}

function offerReceipt(receipt) {
  if (receiptUrl) URL.revokeObjectURL(receiptUrl);
  const file = receipt && new Blob([JSON.stringify(receipt, null, 2) + '\n'], { type: 'application/json' });
  receiptUrl = file && URL.createObjectURL(file);
  $('receipt').href = receiptUrl ?? '#';
  $('receipt').hidden = !receipt;
}

/** The answer for a parcel whose details the courier erased: when and why, what is left. */
async function showErased(body, tracking) {
  const erasures = Array.isArray(body.erasures) ? body.erasures : [];
  const when = erasures.map((e) => new Date(e.erasedAt * 1000).toLocaleString(undefined, DATE_STYLE));
  const why = erasures.map((e) => REASONS[e.reason] ?? e.reason);
  $('lookup-message').textContent = `The details of this parcel were erased on ${when.join(', ')} ` +
    `(${why.join('; ')}). Nothing about it can be shown any more; what is left is the proof that ` +
    'the courier recorded these events, which reveals nothing about the parcel. Keep the signed ' +
    'erasure receipt as evidence of the erasure.';
  offerReceipt(erasures.length ? (erasures.length === 1 ? erasures[0].receipt : erasures.map((e) => e.receipt)) : null);
  await configLoaded;
  for (const e of erasures) $('lookup-message').append(' ', await receiptNote(e.receipt));
  showTimeline((body.timeline ?? []).map((t) => ({ ...t, erased: true })), 'Timeline (details erased)');
  offerDownload(body.bundle ?? null);
  if (body.bundle) {
    await verifyAndShow(body.bundle, `Proof bundle of parcel ${tracking.toUpperCase()} (details erased), as this site sent it.`);
  } else {
    startResult('');
    setSummary('none', 'Nothing to verify: no event of this parcel was anchored before its details were erased.');
  }
}

/** One sentence on an erasure receipt, checked here in the browser (against the chain if it can). */
async function receiptNote(receipt) {
  try {
    const result = await verifyErasureReceipt(receipt, ledgerView());
    if (!result.ok) return `✗ The erasure receipt does not verify: ${result.detail}.`;
    return result.complete
      ? `✓ The erasure receipt is signed by the courier's account on the ledger (${result.receipt.signer}).`
      : `The erasure receipt's signature is valid (${result.receipt.signer}); this page cannot read ` +
        'the chain to confirm that this is the courier\'s account.';
  } catch (e) {
    return `The erasure receipt could not be checked: ${e.message}.`;
  }
}

function offerDownload(bundle) {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  const file = bundle && new Blob([JSON.stringify(bundle, null, 2) + '\n'], { type: 'application/json' });
  downloadUrl = file && URL.createObjectURL(file);
  $('download').href = downloadUrl ?? '#';
  $('download').hidden = !bundle;
}

// --- lookup --------------------------------------------------------------------------------

async function lookUp(event) {
  event.preventDefault();
  const message = $('lookup-message');
  const tracking = $('tracking').value.trim();
  const postcode = $('postcode').value.trim();
  const token = $('token').value.trim();
  for (const id of ['tracking', 'postcode', 'token']) $(id).removeAttribute('aria-invalid');
  if (!tracking) {
    $('tracking').setAttribute('aria-invalid', 'true');
    message.textContent = 'Enter the tracking number.';
    return $('tracking').focus();
  }
  if (Boolean(postcode) === Boolean(token)) {
    $('postcode').setAttribute('aria-invalid', 'true');
    message.textContent = 'Enter either the recipient’s postcode or the access token (one of them).';
    return $('postcode').focus();
  }
  message.textContent = '';
  offerReceipt(null);
  $('lookup-button').disabled = true;
  try {
    const response = await fetch('/v1/lookup', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ tracking_number: tracking, ...(postcode ? { postcode } : { access_token: token }) }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.status === 410 && body.type === ERASED_PROBLEM) {
      await showErased(body, tracking);
      return;
    }
    if (!response.ok) {
      message.textContent = response.status === 404
        ? 'No parcel matches this tracking number and postcode or token.'
        : `The lookup failed: ${body.detail || body.title || `HTTP ${response.status}`}`;
      return;
    }
    showTimeline(body.timeline, 'Timeline');
    offerDownload(body.bundle);
    if (body.bundle) {
      await verifyAndShow(body.bundle, `Proof bundle of parcel ${tracking.toUpperCase()}, as this site sent it.`);
    } else {
      startResult('');
      setSummary('none', 'Nothing to verify yet: no event of this parcel is on the ledger. Try again shortly.');
    }
  } catch (e) {
    message.textContent = `The lookup failed: ${e.message}`;
  } finally {
    $('lookup-button').disabled = false;
  }
}

// --- bundle files --------------------------------------------------------------------------

async function verifyFile(file) {
  if (!file) return;
  const source = `Proof bundle file ${file.name}.`;
  offerDownload(null);
  showTimeline([], '');
  let bundle;
  try {
    if (file.size > MAX_FILE) throw new Error('too large');
    bundle = JSON.parse(await file.text());
  } catch {
    startResult(source);
    return setSummary('unusable', `✗ Not a usable proof bundle: ${file.name} is not a JSON file of at most 5 MB.`);
  }
  showTimeline(timelineOf(bundle), `Timeline claimed by ${file.name}`);
  await verifyAndShow(bundle, source);
}

function setUpDropzone() {
  const zone = $('dropzone');
  $('bundle-file').addEventListener('change', (e) => verifyFile(e.target.files[0]));
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    verifyFile(e.dataTransfer.files[0]);
  });
}

configLoaded = loadConfig();
$('lookup-form').addEventListener('submit', lookUp);
setUpDropzone();
await configLoaded;
document.body.dataset.ready = 'true';
