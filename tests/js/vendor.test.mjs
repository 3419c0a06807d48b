// The vendored ethers build is exactly the one package.json pins.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const read = (path) => readFileSync(new URL(`../../${path}`, import.meta.url));

test('web/vendor/ethers.min.js is the pinned package build, with its licence', () => {
  const pinned = JSON.parse(read('package.json')).dependencies.ethers;
  assert.equal(JSON.parse(read('node_modules/ethers/package.json')).version, pinned);
  assert.ok(read('backend/parcelproof/web/vendor/ethers.min.js').equals(read('node_modules/ethers/dist/ethers.min.js')));
  assert.ok(read('backend/parcelproof/web/vendor/ethers.LICENSE.md').equals(read('node_modules/ethers/LICENSE.md')));
  assert.match(read('backend/parcelproof/web/vendor/README.md').toString(), new RegExp(`ethers ${pinned.replace(/\./g, '\\.')}`));
});
