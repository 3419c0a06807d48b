// ParcelProof staff console: password login, second factors (authenticator-app codes, passkeys,
// recovery codes) and their enrolment, against the node's /v1/staff API.
//
// The session token is kept in the `session` variable below and nowhere else: never in cookies,
// localStorage or sessionStorage, so reloading or closing the page forgets it.

import { startConsole, stopConsole } from './console.js';

const $ = (id) => document.getElementById(id);
const METHOD_NAMES = { totp: 'authenticator app', passkey: 'passkey', 'recovery-code': 'recovery code' };

/** The live session: {token, how (null: password only, else the second factor), enrolRequired,
 * expiresAt (ms), timer}; or null. */
let session = null;
/** A login waiting for its second factor: {token, methods, timer}; or null. */
let pending = null;

// --- base64url <-> bytes (WebAuthn's JSON forms) ---------------------------------------------

function bytesOf(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function base64url(buffer) {
  const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** PublicKeyCredentialCreationOptions from the server's JSON (base64url strings). */
function creationOptions(json) {
  return {
    ...json,
    challenge: bytesOf(json.challenge),
    user: { ...json.user, id: bytesOf(json.user.id) },
    excludeCredentials: (json.excludeCredentials ?? []).map((c) => ({ ...c, id: bytesOf(c.id) })),
  };
}

/** PublicKeyCredentialRequestOptions from the server's JSON (base64url strings). */
function requestOptions(json) {
  return {
    ...json,
    challenge: bytesOf(json.challenge),
    allowCredentials: (json.allowCredentials ?? []).map((c) => ({ ...c, id: bytesOf(c.id) })),
  };
}

function extensions(credential) {
  return typeof credential.getClientExtensionResults === 'function' ? credential.getClientExtensionResults() : {};
}

/** A new credential (attestation) as JSON with base64url fields. */
function registrationJson(credential) {
  const r = credential.response;
  const response = {
    clientDataJSON: base64url(r.clientDataJSON),
    attestationObject: base64url(r.attestationObject),
  };
  if (typeof r.getTransports === 'function') response.transports = r.getTransports();
  return {
    id: credential.id,
    rawId: base64url(credential.rawId),
    type: credential.type,
    response,
    clientExtensionResults: extensions(credential),
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
  };
}

/** An assertion as JSON with base64url fields. */
function assertionJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: base64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: base64url(r.clientDataJSON),
      authenticatorData: base64url(r.authenticatorData),
      signature: base64url(r.signature),
      userHandle: r.userHandle ? base64url(r.userHandle) : null,
    },
    clientExtensionResults: extensions(credential),
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
  };
}

// --- messages and the API --------------------------------------------------------------------

function say(text, kind = 'info') {
  const message = $('message');
  message.dataset.kind = text ? kind : 'none';
  message.textContent = text;
}

class ApiError extends Error {
  constructor(response, body, authenticated) {
    const title = body?.title || `HTTP ${response.status}`;
    let text = body?.detail ? `${title}: ${body.detail}` : title;
    const retry = response.headers.get('retry-after');
    if (response.status === 429 && retry) text += ` (Retry-After: ${retry} s)`;
    super(text);
    this.status = response.status;
    this.authenticated = authenticated;
  }
}

/** POST (or GET) ``path`` as JSON; with ``auth``, as the session's bearer. Problems throw. */
async function api(path, { body, auth = false, method = 'POST' } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (auth) {
    if (!session) throw new Error('you are not logged in');
    headers.authorization = `Bearer ${session.token}`;
  }
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response, data, auth);
  return data;
}

function passkeyProblem(error) {
  switch (error.name) {
    case 'NotAllowedError':
      return 'The passkey request was cancelled, timed out or refused by the device.';
    case 'InvalidStateError':
      return 'This authenticator already holds a passkey for your account: use another device or security key.';
    case 'SecurityError':
      return 'Passkeys need this page at the address the node is configured for, over HTTPS (or on localhost).';
    case 'NotSupportedError':
      return 'This browser or authenticator cannot make the kind of passkey this node asks for.';
    default:
      return `The passkey request failed: ${error.message}`;
  }
}

/** Whether the session still works (a 401 may be a wrong code, or a session that ended). */
async function sessionAlive() {
  try {
    await api('/v1/staff/me', { method: 'GET', auth: true });
    return true;
  } catch (error) {
    return !(error instanceof ApiError && error.status === 401);
  }
}

async function report(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 && error.authenticated && session && !(await sessionAlive())) {
      drop();
      say(`${error.message}. Your session has ended: log in again.`, 'error');
      return;
    }
    say(error.message, 'error');
  } else if (error instanceof DOMException) {
    say(passkeyProblem(error), 'error');
  } else {
    say(`Something went wrong: ${error.message}`, 'error');
  }
}

/** Run ``work`` with ``button`` disabled; any failure is shown in the message region. */
async function busy(button, work) {
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    await report(error);
  } finally {
    button.disabled = false;
  }
}

function webauthnAvailable() {
  return Boolean(window.isSecureContext && window.PublicKeyCredential && navigator.credentials);
}

// --- views -----------------------------------------------------------------------------------

function show(view, focus = `${view}-heading`) {
  document.body.dataset.view = view;
  $('login-section').hidden = view !== 'login';
  $('mfa-section').hidden = view !== 'mfa';
  $('account-section').hidden = view !== 'account';
  $('enrol-section').hidden = view !== 'account';
  if (view !== 'account') hideRecoveryCodes();
  $(focus)?.focus();
}

function clearTimer(holder) {
  if (holder?.timer) clearTimeout(holder.timer);
}

/** Forget the session and any pending login, and everything secret on the page. */
function drop() {
  clearTimer(session);
  clearTimer(pending);
  session = null;
  pending = null;
  stopConsole();
  hideTotpSetup();
  for (const id of ['password', 'totp-login-code', 'recovery-login-code', 'totp-confirm-code']) $(id).value = '';
  show('login', 'username');
}

function startSession(token, expiresIn, how, enrolRequired = false) {
  clearTimer(session);
  clearTimer(pending);
  pending = null;
  session = { token, how, enrolRequired, expiresAt: Date.now() + expiresIn * 1000 };
  session.timer = setTimeout(() => {
    drop();
    say('Your session has expired: log in again.', 'error');
  }, expiresIn * 1000);
}

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

async function showAccount(focus) {
  const me = await api('/v1/staff/me', { method: 'GET', auth: true });
  $('account-username').textContent = me.username;
  $('account-role').textContent = me.role;
  const factors = $('account-factors');
  factors.dataset.factors = me.mfa.join(' ');
  factors.textContent = me.mfa.length ? me.mfa.map((m) => METHOD_NAMES[m] ?? m).join(', ') : 'none yet';
  const state = $('account-session');
  state.dataset.mfa = String(session.how !== null);
  state.textContent = session.how
    ? `Opened with a second factor (${METHOD_NAMES[session.how] ?? session.how}); ends at ${time(session.expiresAt)}.`
    : `Opened with the password only (no second factor); ends at ${time(session.expiresAt)}.`;
  $('enrol-required').hidden = !session.enrolRequired;
  const totp = me.mfa.includes('totp');
  $('totp-enrolled').hidden = !totp;
  $('totp-start').hidden = totp || !$('totp-setup').hidden;
  if (totp) hideTotpSetup();
  show('account', focus);
  // The courier console, for sessions that may do more than enrol a second factor.
  if (session.enrolRequired) stopConsole();
  else startConsole((path) => api(path, { method: 'GET', auth: true }));
}

function showRecoveryCodes(codes) {
  const list = $('recovery-codes');
  list.replaceChildren(...codes.map((code) => {
    const li = document.createElement('li');
    li.textContent = code;
    return li;
  }));
  $('recovery-section').hidden = false;
  $('recovery-heading').focus();
}

function hideRecoveryCodes() {
  $('recovery-codes').replaceChildren();
  $('recovery-section').hidden = true;
}

function hideTotpSetup() {
  $('totp-qr').removeAttribute('src');
  $('totp-uri').textContent = '';
  $('totp-setup').hidden = true;
  $('totp-start').hidden = false;
}

// --- login -----------------------------------------------------------------------------------

async function afterLoginStep(step, how) {
  if (step.status === 'mfa-required') {
    clearTimer(pending);
    pending = { token: step.token, methods: step.methods };
    pending.timer = setTimeout(() => {
      pending = null;
      show('login', 'username');
      say('The login took too long: enter your password again.', 'error');
    }, step.expires_in * 1000);
    $('mfa-passkey').hidden = !step.methods.includes('passkey');
    $('totp-login-form').hidden = !step.methods.includes('totp');
    $('recovery-login-form').hidden = !step.methods.includes('recovery-code');
    show('mfa');
    const names = step.methods.map((m) => METHOD_NAMES[m] ?? m).join(', ');
    say(`Password accepted. Finish with a second factor: ${names}.`);
    return;
  }
  startSession(step.token, step.expires_in, how, step.status === 'enrol-required');
  await showAccount();
  say(step.status === 'enrol-required'
    ? 'Logged in. Your role needs a second factor: add a passkey or an authenticator app now.'
    : `Logged in as ${$('account-username').textContent}.`);
}

async function logIn(event) {
  event.preventDefault();
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    say('Enter your username and your password.', 'error');
    $(username ? 'password' : 'username').focus();
    return;
  }
  try {
    const step = await api('/v1/staff/login', { body: { username, password } });
    await afterLoginStep(step, null);
  } finally {
    $('password').value = '';
  }
}

async function logInWithCode(event, kind) {
  event.preventDefault();
  if (!pending) return;
  const input = $(kind === 'totp' ? 'totp-login-code' : 'recovery-login-code');
  const code = input.value.trim();
  if (kind === 'totp' && !/^\d{6}$/.test(code.replace(/\s/g, ''))) {
    input.setAttribute('aria-invalid', 'true');
    say('Enter the six digits your authenticator app shows.', 'error');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  const path = kind === 'totp' ? '/v1/staff/login/totp' : '/v1/staff/login/recovery';
  try {
    const step = await api(path, { body: { token: pending.token, code: code.replace(/\s/g, '') } });
    await afterLoginStep(step, kind === 'totp' ? 'totp' : 'recovery-code');
  } finally {
    input.value = '';
  }
}

async function logInWithPasskey() {
  if (!pending) return;
  if (!webauthnAvailable()) {
    say('This browser cannot use passkeys on this page: use another second factor.', 'error');
    return;
  }
  say('Follow your device\'s prompt: fingerprint, face, PIN or security key.');
  const options = await api('/v1/staff/login/passkey/options', { body: { token: pending.token } });
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  if (!credential) throw new Error('no passkey was chosen');
  const step = await api('/v1/staff/login/passkey', {
    body: { token: pending.token, credential: assertionJson(credential) },
  });
  await afterLoginStep(step, 'passkey');
}

async function logOut() {
  try {
    await api('/v1/staff/logout', { auth: true });
    drop();
    say('You are logged out.');
  } catch (error) {
    drop();
    say(`Logged out on this page, but the node did not confirm it (${error.message}); the session ends by itself when it expires.`, 'error');
  }
}

// --- enrolment -------------------------------------------------------------------------------

async function factorAdded(added, how) {
  startSession(added.token, added.expires_in, how);
  hideTotpSetup();
  await showAccount();
  const what = how === 'passkey' ? 'Passkey' : 'Authenticator app';
  if (added.recovery_codes.length) {
    showRecoveryCodes(added.recovery_codes);
    say(`${what} added; this session now counts as logged in with a second factor. Store your recovery codes now: they are shown only once.`);
  } else {
    say(`${what} added; this session now counts as logged in with a second factor.`);
  }
}

async function startTotp() {
  const enrolment = await api('/v1/staff/mfa/totp', { auth: true });
  if (!enrolment.qr_png.startsWith('data:image/png;base64,')) throw new Error('the node sent no QR image');
  $('totp-qr').src = enrolment.qr_png;
  $('totp-uri').textContent = enrolment.otpauth_uri;
  $('totp-start').hidden = true;
  $('totp-setup').hidden = false;
  $('totp-confirm-code').focus();
  say('Scan the QR code with your authenticator app, then enter the code it shows.');
}

async function confirmTotp(event) {
  event.preventDefault();
  const input = $('totp-confirm-code');
  const code = input.value.replace(/\s/g, '');
  if (!/^\d{6}$/.test(code)) {
    input.setAttribute('aria-invalid', 'true');
    say('Enter the six digits your authenticator app shows.', 'error');
    input.focus();
    return;
  }
  input.removeAttribute('aria-invalid');
  try {
    const added = await api('/v1/staff/mfa/totp/confirm', { auth: true, body: { code } });
    await factorAdded(added, 'totp');
  } finally {
    input.value = '';
  }
}

async function addPasskey(event) {
  event.preventDefault();
  const nameInput = $('passkey-name');
  const name = nameInput.value.trim();
  if (!name) {
    nameInput.setAttribute('aria-invalid', 'true');
    say('Give the passkey a name first.', 'error');
    nameInput.focus();
    return;
  }
  nameInput.removeAttribute('aria-invalid');
  if (!webauthnAvailable()) {
    say('This browser cannot create passkeys on this page (it needs HTTPS or localhost).', 'error');
    return;
  }
  say('Follow your device\'s prompt: fingerprint, face, PIN or security key.');
  const options = await api('/v1/staff/mfa/passkey/options', { auth: true });
  const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  if (!credential) throw new Error('no passkey was created');
  const added = await api('/v1/staff/mfa/passkey', {
    auth: true,
    body: { credential: registrationJson(credential), name },
  });
  nameInput.value = '';
  await factorAdded(added, 'passkey');
}

async function describePasskeySupport() {
  const support = $('passkey-support');
  if (!webauthnAvailable()) {
    support.dataset.platform = 'none';
    support.textContent = 'This browser cannot use passkeys on this page: passkeys need HTTPS (or localhost) and a browser that supports them.';
    $('passkey-add-button').disabled = true;
    $('passkey-login-button').disabled = true;
    return;
  }
  let platform = false;
  try {
    platform = await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable();
  } catch {
    platform = false;
  }
  support.dataset.platform = String(platform);
  support.textContent = platform
    ? 'This device can keep a passkey itself, unlocked with your fingerprint, face or PIN; a security key works too.'
    : 'No built-in authenticator was found on this device: use a security key, or a phone offered by your browser.';
}

// --- wiring ----------------------------------------------------------------------------------

$('login-form').addEventListener('submit', (e) => busy($('login-button'), () => logIn(e)));
$('totp-login-form').addEventListener('submit', (e) => busy($('totp-login-button'), () => logInWithCode(e, 'totp')));
$('recovery-login-form').addEventListener('submit', (e) => busy($('recovery-login-button'), () => logInWithCode(e, 'recovery')));
$('passkey-login-button').addEventListener('click', () => busy($('passkey-login-button'), logInWithPasskey));
$('mfa-cancel-button').addEventListener('click', () => {
  drop();
  say('');
});
$('logout-button').addEventListener('click', () => busy($('logout-button'), logOut));
$('totp-start-button').addEventListener('click', () => busy($('totp-start-button'), startTotp));
$('totp-confirm-form').addEventListener('submit', (e) => busy($('totp-confirm-button'), () => confirmTotp(e)));
$('passkey-form').addEventListener('submit', (e) => busy($('passkey-add-button'), () => addPasskey(e)));
$('recovery-done-button').addEventListener('click', () => {
  hideRecoveryCodes();
  $('account-heading').focus();
  say('The recovery codes are hidden: they cannot be shown again.');
});

await describePasskeySupport();
document.body.dataset.ready = 'true';
