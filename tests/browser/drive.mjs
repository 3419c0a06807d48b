// Drive the customer page in real headless Chromium (Debian's, through playwright-core).
// Usage: node tests/browser/drive.mjs '<json>' with {url, shots, tracking, postcode,
// files: {name: path}}. Prints one JSON line with what each scenario showed; exits non-zero on
// any failed expectation. Started by tests/browser/test_browser.py.
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const STEP = 30_000; // ms, any single wait
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
setTimeout(() => {
  console.error('drive.mjs: overall timeout');
  process.exit(3);
}, 150_000).unref();

const problems = []; // console errors and uncaught exceptions in any page

async function open(browser, { viewport = { width: 1100, height: 900 }, offline = false, mobile = false } = {}) {
  const context = await browser.newContext({
    viewport, isMobile: mobile, hasTouch: mobile, locale: 'en-GB', timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP);
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`HTTP ${r.status()} ${r.url()}`));
  if (offline) {
    // The same server, but with no public RPC URL in its config: chain checks must be skipped.
    await page.route('**/v1/config', async (route) => {
      const real = await (await route.fetch()).json();
      await route.fulfill({ json: { ...real, rpcUrl: null } });
    });
  }
  await page.goto(opts.url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

/** Wait until the verification summary settles, then read it and every check from the DOM. */
async function result(page, previous = null) {
  await page.waitForFunction(
    (prev) => {
      const s = document.querySelector('#summary');
      const source = document.querySelector('#source').textContent;
      return !['idle', 'running'].includes(s.dataset.state) && source !== prev;
    },
    previous,
    { timeout: STEP },
  );
  return page.evaluate(() => ({
    state: document.querySelector('#summary').dataset.state,
    summary: document.querySelector('#summary').textContent,
    source: document.querySelector('#source').textContent,
    checks: [...document.querySelectorAll('#checks li.check')].map((li) => ({
      name: li.dataset.name,
      ok: li.dataset.ok === 'true',
      state: li.dataset.state,
      subject: li.closest('li.group').querySelector('.subject').textContent,
      detail: li.querySelector('.detail')?.textContent ?? '',
    })),
    timeline: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent),
  }));
}

async function lookUp(page) {
  // By label, as a person (or a screen reader) finds the fields; Enter submits the form.
  await page.getByLabel('Tracking number').fill(opts.tracking);
  await page.getByLabel("Recipient's postcode").fill(opts.postcode);
  await page.getByLabel("Recipient's postcode").press('Enter');
  return result(page);
}

async function openFile(page, path) {
  const before = await page.textContent('#source');
  await page.setInputFiles('#bundle-file', path);
  return result(page, before);
}

const failedNames = (r) => [...new Set(r.checks.filter((c) => !c.ok).map((c) => c.name))].sort();
const out = {};
const browser = await chromium.launch({ executablePath: opts.chromium, args: ARGS, headless: true, timeout: STEP });
try {
  const page = await open(browser);
  out.a11y = await page.evaluate(() => ({
    unlabelled: [...document.querySelectorAll('input')].filter((i) => i.labels.length === 0).map((i) => i.id),
    live: document.querySelector('#summary').getAttribute('aria-live'),
  }));
  out.lookup = await lookUp(page);
  assert.equal(out.lookup.state, 'verified', out.lookup.summary);
  await page.screenshot({ path: join(opts.shots, 'lookup-verified.png'), fullPage: true });

  out.tampered = await openFile(page, opts.files.tampered);
  assert.deepEqual(failedNames(out.tampered), ['commitment'], out.tampered.summary);
  await page.locator('#verify-section').scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(opts.shots, 'tampered-bundle.png'), fullPage: true });

  out.unknownCheckpoint = await openFile(page, opts.files.unknownCheckpoint);
  out.notJson = await openFile(page, opts.files.notJson);
  // The file input is reachable from the keyboard.
  await page.focus('#bundle-file');
  out.fileInputFocused = await page.evaluate(() => document.activeElement?.id === 'bundle-file');

  const offline = await open(browser, { offline: true });
  out.offline = await lookUp(offline);
  out.offlineNotice = await offline.textContent('#chain-info');

  const phone = await open(browser, { viewport: { width: 390, height: 844 }, mobile: true });
  out.phone = await lookUp(phone);
  out.phone.scrollWidth = await phone.evaluate(() => document.documentElement.scrollWidth);
  out.phone.overflowing = await phone.evaluate(() => [...document.querySelectorAll('body *')]
    .filter((e) => e.scrollWidth > e.clientWidth + 1 && !e.classList.contains('visually-hidden'))
    .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`));
  await phone.screenshot({ path: join(opts.shots, 'phone-width.png'), fullPage: true });
  out.problems = problems;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
