// Drive the customer page for a parcel whose details were erased (tests/browser/
// test_erased_page.py): the lookup's 410 answer is shown as "details erased", the proof that is
// left is verified here, and the erasure receipt is checked against the chain and offered.
// Usage: node tests/browser/drive_erased.mjs '<json>' with {url, shots, tracking, postcode,
// chromium}. Prints one JSON line with what the page showed.
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const STEP = 30_000;
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
setTimeout(() => {
  console.error('drive_erased.mjs: overall timeout');
  process.exit(3);
}, 100_000).unref();

const problems = [];
const browser = await chromium.launch({ executablePath: opts.chromium, args: ARGS, headless: true, timeout: STEP });
const out = {};
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  context.setDefaultTimeout(STEP);
  const page = await context.newPage();
  // The browser logs every 4xx answer; the 410 of the erased parcel is the expected one.
  page.on('console', (m) => m.type() === 'error' && !/status of 410/.test(m.text()) && problems.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => r.status() >= 400 && r.status() !== 410 && problems.push(`HTTP ${r.status()} ${r.url()}`));
  await page.goto(opts.url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.getByLabel('Tracking number').fill(opts.tracking);
  await page.getByLabel("Recipient's postcode").fill(opts.postcode);
  await page.getByLabel("Recipient's postcode").press('Enter');
  await page.waitForFunction(() => {
    const state = document.querySelector('#summary').dataset.state;
    return !['idle', 'running'].includes(state) && /erasure receipt/.test(document.querySelector('#lookup-message').textContent);
  });
  Object.assign(out, await page.evaluate(() => ({
    message: document.querySelector('#lookup-message').textContent,
    receiptShown: !document.querySelector('#receipt').hidden,
    state: document.querySelector('#summary').dataset.state,
    summary: document.querySelector('#summary').textContent,
    checks: [...document.querySelectorAll('#checks li.check')].map((li) => ({ name: li.dataset.name, state: li.dataset.state })),
    timeline: [...document.querySelectorAll('#timeline li')].map((li) => li.textContent),
  })));
  const download = page.waitForEvent('download');
  await page.click('#receipt');
  out.receipt = JSON.parse(await (await (await download).createReadStream()).toArray().then((c) => Buffer.concat(c).toString()));
  await page.screenshot({ path: join(opts.shots, 'lookup-erased.png'), fullPage: true });
  out.problems = problems;
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
