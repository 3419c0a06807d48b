// Drive the courier console (the panels of /staff) in real headless Chromium (Debian's, through
// playwright-core). Usage: node tests/browser/drive_console.mjs '<json>' with {url, chromium,
// shots, password, users: {operator, resolver}}. Talks JSON lines: prints {"ask": {...}} when it
// needs a TOTP code or a new scan recorded (the test answers one line on stdin), and finally
// {"result": {...}} with what each step showed. Exits non-zero on any failed wait.
// Started by tests/browser/test_console_page.py.
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const STEP = 30_000; // ms, any single wait
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
setTimeout(() => {
  console.error(`drive_console.mjs: overall timeout (at: ${step})`);
  process.exit(3);
}, 120_000).unref();

const input = createInterface({ input: process.stdin });
const answers = input[Symbol.asyncIterator]();
let step = 'start';

/** Ask the test (on stdout) and wait for its one-line JSON answer (on stdin). */
async function ask(question) {
  console.log(JSON.stringify({ ask: question }));
  const { value, done } = await answers.next();
  if (done) throw new Error(`no answer to ${JSON.stringify(question)}`);
  return JSON.parse(value);
}

const problems = []; // console errors and uncaught exceptions
const failures = []; // HTTP responses >= 400, as "status path"
const requests = []; // API paths called, in order

async function view(page, name) {
  await page.waitForSelector(`body[data-view="${name}"]`);
}

async function logIn(page, username) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(opts.password);
  await page.getByRole('button', { name: 'Log in', exact: true }).click();
}

/** Wait for the console's first complete refresh after a login. */
async function consoleReady(page) {
  await page.waitForSelector('body[data-console="ready"]');
  await page.waitForSelector('#shipments-body tr[data-shipment]');
}

const rows = (page, body, key) => page.evaluate(([id, name]) => [...document.querySelectorAll(`#${id} tr`)]
  .filter((tr) => tr.dataset[name])
  .map((tr) => ({ ...tr.dataset, cells: [...tr.cells].map((c) => c.textContent) })), [body, key]);

const shown = (page) => page.evaluate(() => {
  const status = document.querySelector('#console-status');
  const ids = ['console-log-size', 'console-anchored', 'console-waiting', 'console-latest',
    'console-interval', 'console-shipments', 'console-open-disputes'];
  return {
    status: { text: status.textContent, state: status.dataset.state, live: status.getAttribute('aria-live') },
    facts: Object.fromEntries(ids.map((id) => [id, document.getElementById(id).textContent])),
    disputesVisible: document.querySelector('#disputes-panel').checkVisibility(),
    disputeFactVisible: document.querySelector('#console-disputes-fact').checkVisibility(),
    captions: [...document.querySelectorAll('#console-section caption')]
      .filter((c) => c.checkVisibility()).map((c) => c.textContent),
    text: document.body.innerText,
  };
});

const out = {};
let code = 0;
const browser = await chromium.launch({ executablePath: opts.chromium, args: ARGS, headless: true, timeout: STEP });
try {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 }, locale: 'en-GB', timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP);
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/v1/')) requests.push(`${r.method()} ${path}`);
  });
  page.on('response', (r) => r.status() >= 400 && failures.push(`${r.status()} ${new URL(r.url()).pathname}`));

  step = 'open';
  await page.goto(`${opts.url}/staff`);
  await page.waitForSelector('body[data-ready="true"]');

  // --- a courier operator: password only --------------------------------------------------------
  step = 'operator: login';
  await logIn(page, opts.users.operator);
  await view(page, 'account');
  await consoleReady(page);
  const operator = await shown(page);
  operator.checkpoints = await rows(page, 'checkpoints-body', 'size');
  operator.shipments = await rows(page, 'shipments-body', 'shipment');

  step = 'operator: older shipments';
  await page.getByRole('button', { name: 'Older', exact: true }).click();
  await page.waitForFunction(() => document.querySelector('#shipments-caption').textContent.includes('11–'));
  operator.olderPage = {
    caption: await page.locator('#shipments-caption').textContent(),
    rows: await rows(page, 'shipments-body', 'shipment'),
    nextDisabled: await page.locator('#shipments-next').isDisabled(),
    previousDisabled: await page.locator('#shipments-previous').isDisabled(),
  };
  await page.getByRole('button', { name: 'Newer', exact: true }).click();
  await page.waitForFunction(() => document.querySelector('#shipments-caption').textContent.includes(' 1–'));

  step = 'operator: a scan arrives and the console refreshes by itself';
  const before = await page.locator('#console-log-size').textContent();
  await ask({ kind: 'scan' });
  await page.waitForFunction((old) => document.querySelector('#console-log-size').textContent !== old, before, { timeout: 15_000 });
  await page.waitForFunction(() => document.querySelector('#shipments-body tr td:nth-child(3)')?.textContent === 'departed');
  operator.refreshed = {
    log: await page.locator('#console-log-size').textContent(),
    waiting: await page.locator('#console-waiting').textContent(),
    newest: await page.locator('#shipments-body tr:first-child td:nth-child(3)').textContent(),
  };
  operator.requests = [...requests];
  out.operator = operator;
  await page.getByRole('button', { name: 'Log out', exact: true }).click();
  await view(page, 'login');

  // --- a dispute resolver: password and an authenticator-app code ---------------------------------
  step = 'resolver: login';
  await logIn(page, opts.users.resolver);
  await view(page, 'mfa');
  const { code: totp } = await ask({ kind: 'totp' });
  await page.getByLabel('Code from your authenticator app').fill(totp);
  await page.getByRole('button', { name: 'Log in with the code', exact: true }).click();
  await view(page, 'account');
  await consoleReady(page);
  await page.waitForSelector('#disputes-body tr[data-dispute]');
  const resolver = await shown(page);
  resolver.disputes = await rows(page, 'disputes-body', 'dispute');
  delete resolver.text;
  out.resolver = resolver;

  step = 'screenshot';
  await page.locator('#console-section').screenshot({ path: join(opts.shots, 'console.png') });

  step = 'resolver: logout';
  await page.getByRole('button', { name: 'Log out', exact: true }).click();
  await view(page, 'login');
  out.afterLogout = await page.evaluate(() => ({
    hidden: document.querySelector('#console-section').hidden,
    rows: document.querySelectorAll('#console-section tbody tr').length,
  }));
  out.problems = problems;
  out.failures = failures;
  console.log(JSON.stringify({ result: out }));
} catch (error) {
  console.error(`drive_console.mjs failed at "${step}": ${error.stack ?? error}`);
  console.error(`problems: ${JSON.stringify(problems)} failures: ${JSON.stringify(failures)}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
