// ParcelProof courier console: the anchoring status, latest checkpoints, shipments and (for roles
// that may list them) open disputes of this node, refreshed every few seconds. Imported by
// staff.js, which starts it once a session may use it and stops it when the session ends.
//
// The session token stays in staff.js: this module only gets a `get(path)` function that calls
// the API with it. Nothing is stored; everything is written with textContent.

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;
const PAGE_SIZE = 10;
const WORKER_TEXT = {
  idle: 'Up to date',
  ok: 'Anchoring normally',
  late: 'Anchoring is late',
  stalled: 'Anchoring has stalled',
};

/** The running console: {get, generation, timer, busy, offset}; or null. */
let running = null;
let generation = 0;

// --- formatting ------------------------------------------------------------------------------

function utc(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  return `${new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86400)} days`;
}

function short(hex) {
  return hex ? `${hex.slice(0, 10)}…${hex.slice(-6)}` : '–';
}

function count(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** A <code> element showing a shortened hash, the full value in its title. */
function hash(hex) {
  const code = document.createElement('code');
  code.textContent = short(hex);
  if (hex) code.title = hex;
  return code;
}

function cell(content, tag = 'td') {
  const td = document.createElement(tag);
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? '–';
  return td;
}

function row(cells, data = {}) {
  const tr = document.createElement('tr');
  tr.append(...cells.map((c, i) => cell(c, i === 0 ? 'th' : 'td')));
  if (tr.firstChild) tr.firstChild.scope = 'row';
  Object.assign(tr.dataset, data);
  return tr;
}

function fill(tbody, rows, empty, columns) {
  if (rows.length) {
    tbody.replaceChildren(...rows);
    return;
  }
  const td = document.createElement('td');
  td.colSpan = columns;
  td.className = 'empty';
  td.textContent = empty;
  const tr = document.createElement('tr');
  tr.append(td);
  tbody.replaceChildren(tr);
}

function fact(id, text) {
  $(id).textContent = text;
}

/** Change the live region only when its text changes, so a refresh announces nothing new. */
function status(text, state) {
  const live = $('console-status');
  if (live.textContent !== text) live.textContent = text;
  live.dataset.state = state;
}

// --- panels ----------------------------------------------------------------------------------

function showOverview(o) {
  const w = o.worker;
  status(`${WORKER_TEXT[w.state] ?? w.state}: ${w.detail}.`, w.state);
  fact('console-log-size', count(o.log_size, 'event'));
  fact('console-anchored', `${o.anchored_size} anchored, ${o.confirmed_size} confirmed`);
  fact('console-waiting', o.waiting
    ? `${count(o.waiting, 'event')}, the oldest recorded ${age(o.oldest_waiting_age)} ago`
    : 'none');
  const cp = o.latest_checkpoint;
  fact('console-latest', cp
    ? `size ${cp.size}, block ${cp.block_number ?? '–'}, recorded ${utc(cp.recorded_at)} (${age(o.now - cp.recorded_at)} ago)`
    : 'none yet');
  fact('console-interval', `every ${o.anchor_interval_seconds} s while events wait${o.sending ? `; ${count(o.sending, 'transaction')} being mined` : ''}`);
  fact('console-shipments', String(o.shipments));
  $('console-disputes-fact').hidden = !o.disputes_visible;
  fact('console-open-disputes', o.open_disputes === null ? 'not enabled on this node' : String(o.open_disputes));
  $('disputes-panel').hidden = !o.disputes_visible || o.open_disputes === null;
}

function showCheckpoints(list) {
  fill($('checkpoints-body'), list.map((c) => row([
    String(c.size), c.status, c.block_number === null ? '–' : String(c.block_number),
    hash(c.tx_hash), hash(c.root), utc(c.recorded_at),
  ], { size: String(c.size), status: c.status })), 'No checkpoint yet: nothing is anchored.', 6);
}

function showShipments(page) {
  const first = page.total ? page.offset + 1 : 0;
  const last = page.offset + page.items.length;
  fact('shipments-caption', `Shipments, newest first: ${first}–${last} of ${page.total}`);
  fill($('shipments-body'), page.items.map((s) => row([
    s.shipment_id,
    utc(s.created_at),
    s.erased ? 'erased' : (s.status ?? '–').replace(/_/g, ' '),
    utc(s.status_time),
    String(s.events),
    s.anchoring ?? 'no events',
  ], { shipment: s.shipment_id, anchoring: s.anchoring ?? 'none' })), 'No shipments yet.', 6);
  $('shipments-previous').disabled = page.offset === 0;
  $('shipments-next').disabled = last >= page.total;
}

function showDisputes(list) {
  const open = list.filter((d) => d.state !== 'resolved');
  fill($('disputes-body'), open.map((d) => row([
    hash(d.dispute_id), d.reason.replace(/-/g, ' '), d.state, utc(d.opened_at),
    d.opened_by, d.assignee ?? 'unassigned', String(d.events.length),
  ], { dispute: d.dispute_id, state: d.state })), 'No open disputes.', 7);
}

// --- refreshing ------------------------------------------------------------------------------

async function refresh() {
  if (!running || running.busy) return;
  const mine = generation;
  const { get } = running;
  running.busy = true;
  try {
    const [overview, checkpoints, shipments] = await Promise.all([
      get('/v1/console/overview'),
      get('/v1/console/checkpoints?limit=5'),
      get(`/v1/console/shipments?limit=${PAGE_SIZE}&offset=${running.offset}`),
    ]);
    const disputes = overview.disputes_visible && overview.open_disputes !== null
      ? await get('/v1/disputes?limit=100')
      : [];
    if (mine !== generation) return; // stopped (logged out) meanwhile: show nothing
    showOverview(overview);
    showCheckpoints(checkpoints);
    showShipments(shipments);
    showDisputes(disputes);
    fact('console-updated', `Updated ${utc(overview.now)}; refreshes every ${REFRESH_MS / 1000} s.`);
    document.body.dataset.console = 'ready';
  } catch (error) {
    if (mine !== generation) return;
    if (error.status === 401) {
      stop();
      status('The node no longer accepts this session: log out and log in again.', 'error');
    } else {
      status(`Could not refresh the console: ${error.message}`, 'error');
    }
  } finally {
    if (running && mine === generation) running.busy = false;
  }
}

function stop() {
  generation += 1;
  if (running?.timer) clearInterval(running.timer);
  running = null;
}

/** Show the console and keep it fresh; ``get(path)`` calls the API with the session. */
export function startConsole(get) {
  $('console-section').hidden = false;
  if (running) {
    running.get = get;
  } else {
    running = { get, offset: 0, busy: false };
    running.timer = setInterval(() => {
      if (!document.hidden) refresh();
    }, REFRESH_MS);
  }
  return refresh();
}

/** Hide the console, stop refreshing and forget what it showed. */
export function stopConsole() {
  stop();
  $('console-section').hidden = true;
  delete document.body.dataset.console;
  for (const id of ['checkpoints-body', 'shipments-body', 'disputes-body']) $(id).replaceChildren();
  $('console-status').textContent = '';
}

function page(delta) {
  if (!running) return;
  running.offset = Math.max(0, running.offset + delta * PAGE_SIZE);
  generation += 1; // a refresh still in flight shows the old page: drop its answer
  running.busy = false;
  refresh();
}

$('shipments-previous').addEventListener('click', () => page(-1));
$('shipments-next').addEventListener('click', () => page(1));
$('console-refresh').addEventListener('click', () => refresh());
