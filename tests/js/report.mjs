// Verify many bundles in one process for the Python parity test (tests/js/test_parity.py).
// Usage: node tests/js/report.mjs CASES.json — CASES is [{bundle, ledger: snapshot | null}];
// prints [{usable: false, error} | {usable: true, ok, checks: [{name, subject, ok, skipped}]}].
// With --jcs VALUES.json instead: prints the RFC 8785 form of each value (null if refused).
import { readFileSync } from 'node:fs';

import { FormatError, jcs, snapshotLedger, verifyBundle } from '../../backend/parcelproof/web/verifier.js';

if (process.argv[2] === '--jcs') {
  const values = JSON.parse(readFileSync(process.argv[3], 'utf8'));
  process.stdout.write(JSON.stringify(values.map((v) => {
    try {
      return jcs(v);
    } catch (e) {
      if (e instanceof FormatError) return null;
      throw e;
    }
  })));
  process.exit(0);
}

const cases = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const results = [];
for (const { bundle, ledger } of cases) {
  try {
    const report = await verifyBundle(bundle, ledger === null ? null : snapshotLedger(ledger));
    const checks = report.checks.map(({ name, subject, ok, skipped }) => ({ name, subject, ok, skipped: Boolean(skipped) }));
    results.push({ usable: true, ok: report.ok, checks });
  } catch (e) {
    if (!(e instanceof FormatError)) throw e;
    results.push({ usable: false, error: e.message });
  }
}
process.stdout.write(JSON.stringify(results));
