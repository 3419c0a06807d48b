// The JS RFC 9162 consistency check agrees with every transparency-dev consistency vector
// (hostile ones included), like core/merkle.py does. Run: node --test tests/js/
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { test } from 'node:test';

import { verifyConsistency } from '../../backend/parcelproof/web/verifier.js';

const root = new URL('../vectors/rfc6962/consistency/', import.meta.url);
const hex = (b64) => '0x' + Buffer.from(b64 ?? '', 'base64').toString('hex');

const files = readdirSync(root).flatMap((d) =>
  statSync(new URL(d, root)).isDirectory()
    ? readdirSync(new URL(`${d}/`, root)).map((f) => `${d}/${f}`)
    : []);

test('the consistency vectors are there', () => assert.ok(files.length > 50));

for (const file of files) {
  const v = JSON.parse(readFileSync(new URL(file, root), 'utf8'));
  test(`${file}: ${v.desc}`, async () => {
    const proof = (v.proof ?? []).map(hex);
    const run = () => verifyConsistency(v.size1, v.size2, hex(v.root1), hex(v.root2), proof);
    if (v.wantErr) await assert.rejects(run);
    else await run();
  });
}
