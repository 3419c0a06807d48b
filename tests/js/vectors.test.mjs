// Every published bundle vector gives exactly its expected outcome in the JS verifier, as in
// tests/unit/test_bundle_vectors.py for the Python one. Run: node --test tests/js/
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

import { ERASED, FormatError, verifyBundle, snapshotLedger } from '../../backend/parcelproof/web/verifier.js';

const dir = new URL('../vectors/bundles/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();

test('there are vectors for every kind of mutation', () => {
  assert.ok(files.length >= 10);
  assert.ok(files.some((f) => f.startsWith('valid-')));
  assert.ok(files.includes('valid-erased-sender-log.json'));
});

for (const file of files) {
  const vector = JSON.parse(readFileSync(new URL(file, dir), 'utf8'));
  test(`${file}: ${vector.description}`, async () => {
    const { expect } = vector;
    const ledger = snapshotLedger(vector.ledger);
    if (!expect.usable) {
      await assert.rejects(verifyBundle(vector.bundle, ledger), FormatError);
      return;
    }
    const report = await verifyBundle(vector.bundle, ledger);
    assert.equal(report.ok, expect.valid);
    assert.equal(report.complete, expect.complete ?? true); // false: an erased event's check skipped
    const failed = [...new Set(report.checks.filter((c) => !c.ok).map((c) => c.name))].sort();
    assert.deepEqual(failed, expect.failedChecks);
  });
}

test('offline (no ledger) skips exactly the checks that read the chain', async () => {
  const vector = JSON.parse(readFileSync(new URL('valid-handoff-delivery.json', dir), 'utf8'));
  const report = await verifyBundle(vector.bundle, null);
  assert.equal(report.ok, true);
  assert.equal(report.complete, false);
  const skipped = new Set(report.checks.filter((c) => c.skipped).map((c) => c.name));
  assert.deepEqual([...skipped].sort(), ['agent-key', 'checkpoint', 'handoff-countersignature', 'ledger']);
  const names = new Set(report.checks.map((c) => c.name));
  for (const name of ['hash-chain', 'commitment', 'signature', 'inclusion', 'handoff']) assert.ok(names.has(name), name);
});

test('a bundle for another chain or contract fails the ledger check', async () => {
  const vector = JSON.parse(readFileSync(new URL('valid-handoff-delivery.json', dir), 'utf8'));
  const report = await verifyBundle(vector.bundle, snapshotLedger({ ...vector.ledger, chainId: 1 }));
  assert.deepEqual([...new Set(report.checks.filter((c) => !c.ok).map((c) => c.name))], ['ledger']);
});

test('an erased event skips only its commitment check, as erased', async () => {
  const vector = JSON.parse(readFileSync(new URL('valid-erased-sender-log.json', dir), 'utf8'));
  const report = await verifyBundle(vector.bundle, snapshotLedger(vector.ledger));
  assert.equal(report.ok, true);
  const erasedLog = vector.bundle.logs[0];
  const subjects = erasedLog.events.map((e) => `log ${erasedLog.logId.slice(0, 18)}… event #${e.sequence}`);
  const skipped = report.checks.filter((c) => c.skipped);
  assert.deepEqual(skipped.map((c) => c.name), subjects.map(() => 'commitment'));
  assert.deepEqual(skipped.map((c) => c.subject), subjects);
  assert.ok(skipped.every((c) => c.detail === ERASED));
  for (const subject of subjects) {
    const names = report.checks.filter((c) => c.subject === subject && !c.skipped).map((c) => c.name);
    assert.deepEqual(names, ['hash-chain', 'signature', 'agent-key', 'inclusion']);
  }
});
