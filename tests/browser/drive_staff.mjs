// Drive the staff console (/staff) in real headless Chromium (Debian's, through playwright-core),
// with Chromium's virtual WebAuthn authenticator (CDP) standing in for a fingerprint reader.
// Usage: node tests/browser/drive_staff.mjs '<json>' with {url, chromium, shots, password,
// users: {passkey, totp, locked}}. Talks JSON lines: prints {"ask": {...}} when it needs a TOTP
// code (the test computes it with pyotp and answers one line on stdin), and finally
// {"result": {...}} with what each step showed. Exits non-zero on any failed wait.
// Started by tests/browser/test_staff_page.py.
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

const opts = JSON.parse(process.argv[2]);
const STEP = 30_000; // ms, any single wait
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
setTimeout(() => {
  console.error(`drive_staff.mjs: overall timeout (at: ${step})`);
  process.exit(3);
}, 150_000).unref();

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

/** Click a button and wait until the work it started is over (busy() re-enables it). */
async function press(page, name) {
  const button = page.getByRole('button', { name, exact: true });
  const handle = await button.elementHandle(); // before: the button may be hidden afterwards
  await button.click();
  await page.waitForFunction((el) => !el.disabled, handle);
}

async function view(page, name) {
  await page.waitForSelector(`body[data-view="${name}"]`);
}

const message = (page) => page.evaluate(() => {
  const m = document.querySelector('#message');
  return { kind: m.dataset.kind, text: m.textContent };
});

async function logIn(page, username) {
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(opts.password);
  await press(page, 'Log in');
}

const account = (page) => page.evaluate(() => ({
  username: document.querySelector('#account-username').textContent,
  role: document.querySelector('#account-role').textContent,
  factors: document.querySelector('#account-factors').dataset.factors,
  factorsText: document.querySelector('#account-factors').textContent,
  mfa: document.querySelector('#account-session').dataset.mfa === 'true',
  session: document.querySelector('#account-session').textContent,
  enrolRequired: !document.querySelector('#enrol-required').hidden,
}));

const visible = (page, ids) => page.evaluate((list) => Object.fromEntries(
  list.map((id) => [id, document.getElementById(id).checkVisibility()]),
), ids);

async function recoveryCodes(page) {
  await page.waitForSelector('#recovery-section:not([hidden]) #recovery-codes li');
  const shown = await page.evaluate(() => ({
    codes: [...document.querySelectorAll('#recovery-codes li')].map((li) => li.textContent),
    warning: document.querySelector('#recovery-section .warning').textContent.replace(/\s+/g, ' '),
    focused: document.activeElement?.id,
  }));
  return shown;
}

async function hideRecoveryCodes(page) {
  await press(page, 'I have stored them: hide the codes');
  await page.waitForSelector('#recovery-section', { state: 'hidden' });
}

async function logOut(page) {
  await press(page, 'Log out');
  await view(page, 'login');
  return message(page);
}

const out = {};
let code = 0;
const browser = await chromium.launch({ executablePath: opts.chromium, args: ARGS, headless: true, timeout: STEP });
try {
  const context = await browser.newContext({
    viewport: { width: 1000, height: 900 }, locale: 'en-GB', timezoneId: 'UTC',
  });
  context.setDefaultTimeout(STEP);
  const page = await context.newPage();
  page.on('console', (m) => {
    // Chromium logs every 4xx as "Failed to load resource": those are counted in `failures`.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('response', (r) => r.status() >= 400 && failures.push(`${r.status()} ${new URL(r.url()).pathname}`));

  // A platform authenticator that verifies its user (as a fingerprint reader or face unlock).
  step = 'virtual authenticator';
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true,
    },
  });
  const credentials = async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials
    .map((c) => ({ resident: c.isResidentCredential, rpId: c.rpId, signCount: c.signCount, userHandle: c.userHandle }));

  step = 'open';
  await page.goto(`${opts.url}/staff`);
  await page.waitForSelector('body[data-ready="true"]');
  out.page = await page.evaluate(() => ({
    secure: window.isSecureContext,
    unlabelled: [...document.querySelectorAll('input')].filter((i) => i.labels.length === 0).map((i) => i.id),
    live: document.querySelector('#message').getAttribute('aria-live'),
    platform: document.querySelector('#passkey-support').dataset.platform,
    note: document.querySelector('#memory-note').textContent.replace(/\s+/g, ' '),
  }));

  // --- a consortium admin: password, then a passkey as first second factor ------------------
  step = 'admin: password';
  await logIn(page, opts.users.passkey);
  await view(page, 'account');
  out.adminFirst = { account: await account(page), message: await message(page) };

  step = 'admin: add a passkey';
  await page.getByLabel('Name for this passkey').fill('Virtual fingerprint');
  await press(page, 'Add a passkey');
  out.adminEnrolled = { recovery: await recoveryCodes(page) };
  out.adminEnrolled.account = await account(page);
  out.adminEnrolled.message = await message(page);
  out.adminEnrolled.credentials = await credentials();
  await page.screenshot({ path: join(opts.shots, 'staff-recovery-codes.png'), fullPage: true });
  await hideRecoveryCodes(page);
  out.adminEnrolled.codesLeftOnPage = await page.locator('#recovery-codes li').count();

  step = 'admin: the same authenticator again';
  await page.getByLabel('Name for this passkey').fill('Same device again');
  await press(page, 'Add a passkey');
  out.adminExcluded = await message(page);

  step = 'admin: log out';
  out.adminLogout = await logOut(page);

  step = 'admin: password then passkey';
  await logIn(page, opts.users.passkey);
  await view(page, 'mfa');
  out.adminMfa = {
    visible: await visible(page, ['mfa-passkey', 'totp-login-form', 'recovery-login-form']),
    message: await message(page),
    focused: await page.evaluate(() => document.activeElement?.id),
  };
  await page.screenshot({ path: join(opts.shots, 'staff-second-factor.png'), fullPage: true });
  await press(page, 'Use a passkey');
  await view(page, 'account');
  out.adminPasskeyLogin = { account: await account(page), message: await message(page), credentials: await credentials() };
  out.storage = await page.evaluate(() => ({
    local: localStorage.length, session: sessionStorage.length, cookie: document.cookie,
  }));
  step = 'admin: the node ends the session';
  await ask({ kind: 'revoke', username: opts.users.passkey });
  await press(page, 'Set up an authenticator app');
  await view(page, 'login');
  out.adminRevoked = { message: await message(page), focused: await page.evaluate(() => document.activeElement?.id) };
  step = 'admin: reload forgets the session';
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  out.afterReload = await page.evaluate(() => document.body.dataset.view);

  // --- a courier operator: an authenticator app (TOTP) -------------------------------------
  step = 'operator: password';
  await logIn(page, opts.users.totp);
  await view(page, 'account');
  out.operatorFirst = { account: await account(page), message: await message(page) };

  step = 'operator: TOTP setup';
  await press(page, 'Set up an authenticator app');
  await page.waitForFunction(() => {
    const img = document.querySelector('#totp-qr');
    return !document.querySelector('#totp-setup').hidden && img.complete && img.naturalWidth > 0;
  });
  out.totpSetup = await page.evaluate(() => {
    const img = document.querySelector('#totp-qr');
    return {
      uri: document.querySelector('#totp-uri').textContent,
      src: img.getAttribute('src'),
      alt: img.alt,
      width: img.naturalWidth,
      focused: document.activeElement?.id,
    };
  });
  await page.screenshot({ path: join(opts.shots, 'staff-totp-setup.png'), fullPage: true });
  // A mistyped code: named, and the session and the setup stay.
  const mistyped = await ask({ kind: 'wrong', uri: out.totpSetup.uri });
  await page.getByLabel('Code shown by the app').fill(mistyped.code);
  await press(page, 'Confirm the app');
  out.totpMistyped = {
    message: await message(page),
    view: await page.evaluate(() => document.body.dataset.view),
    setupVisible: await page.locator('#totp-setup').isVisible(),
  };
  const first = await ask({ kind: 'now' });
  await page.getByLabel('Code shown by the app').fill(first.code);
  await press(page, 'Confirm the app');
  out.operatorEnrolled = { recovery: await recoveryCodes(page) };
  out.operatorEnrolled.account = await account(page);
  out.operatorEnrolled.totpSetupVisible = await page.locator('#totp-setup').isVisible();
  out.operatorEnrolled.qrSrc = await page.locator('#totp-qr').getAttribute('src');
  await hideRecoveryCodes(page);
  await logOut(page);

  step = 'operator: password then a wrong code';
  await logIn(page, opts.users.totp);
  await view(page, 'mfa');
  out.operatorMfa = { visible: await visible(page, ['mfa-passkey', 'totp-login-form', 'recovery-login-form']) };
  const wrong = await ask({ kind: 'wrong' });
  await page.getByLabel('Code from your authenticator app').fill(wrong.code);
  await press(page, 'Log in with the code');
  out.operatorWrongCode = { message: await message(page), view: await page.evaluate(() => document.body.dataset.view) };

  step = 'operator: the next code';
  const next = await ask({ kind: 'next' });
  await page.getByLabel('Code from your authenticator app').fill(next.code);
  await press(page, 'Log in with the code');
  await view(page, 'account');
  out.operatorTotpLogin = { account: await account(page) };
  await logOut(page);

  step = 'operator: a recovery code';
  const recovery = out.operatorEnrolled.recovery.codes[0];
  await logIn(page, opts.users.totp);
  await view(page, 'mfa');
  await page.getByLabel('Recovery code', { exact: true }).fill(recovery);
  await press(page, 'Log in with the recovery code');
  await view(page, 'account');
  out.operatorRecoveryLogin = { account: await account(page) };
  await logOut(page);

  step = 'operator: the same recovery code again';
  await logIn(page, opts.users.totp);
  await view(page, 'mfa');
  await page.getByLabel('Recovery code', { exact: true }).fill(recovery);
  await press(page, 'Log in with the recovery code');
  out.operatorRecoveryReused = { message: await message(page), view: await page.evaluate(() => document.body.dataset.view) };
  await press(page, 'Start again');
  await view(page, 'login');

  // --- repeated wrong passwords: the lockout (429) names its Retry-After ---------------------
  step = 'lockout';
  out.lockout = [];
  for (let i = 0; i < 5; i += 1) {
    await page.getByLabel('Username').fill(opts.users.locked);
    await page.getByLabel('Password').fill(`wrong password number ${i}`);
    await press(page, 'Log in');
    out.lockout.push(await message(page));
  }
  out.passwordCleared = await page.getByLabel('Password').inputValue();

  // --- phone width: nothing wider than the screen ------------------------------------------
  step = 'phone width';
  await page.setViewportSize({ width: 390, height: 844 });
  out.phoneScrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);

  out.problems = problems;
  out.failures = failures;
  console.log(JSON.stringify({ result: out }));
} catch (error) {
  console.error(`drive_staff.mjs failed at "${step}": ${error.stack}`);
  console.error(`so far: ${JSON.stringify({ ...out, problems, failures })}`);
  code = 1;
} finally {
  input.close();
  await browser.close();
}
process.exit(code);
