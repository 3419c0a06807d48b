// RFC 8785 canonical JSON for the value types a field may hold (no floating-point numbers).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FormatError, jcs } from '../../backend/parcelproof/web/verifier.js';

test('object keys are sorted by UTF-16 code units, recursively', () => {
  assert.equal(jcs({ b: 1, a: { d: [], c: null }, A: true }), '{"A":true,"a":{"c":null,"d":[]},"b":1}');
  // RFC 8785 §3.2.3's example: U+20AC (€) < U+1F600 (surrogates D83D DE00) < U+FB33 by code units.
  assert.equal(jcs({ '\ufb33': 3, '\u{1f600}': 2, '\u20ac': 1, '\r': 0 }), '{"\\r":0,"€":1,"😀":2,"דּ":3}');
});

test('integer-like keys sort as strings, not in the engine\'s numeric key order', () => {
  assert.equal(jcs({ 10: 'a', 2: 'b', 1: 'c', b: 'd' }), '{"1":"c","10":"a","2":"b","b":"d"}');
});

test('strings are escaped as RFC 8785 prescribes', () => {
  assert.equal(jcs('\u0000\u001f"\\/\b\f\n\r\t é€😀'), '"\\u0000\\u001f\\"\\\\/\\b\\f\\n\\r\\t é€😀"');
  assert.equal(jcs('\u2028\u007f'), '"\u2028\u007f"');
});

test('integers within ±(2^53 - 1) and literals', () => {
  assert.equal(jcs([0, -0, 1, -1, 1789992800, 9007199254740991, -9007199254740991]), '[0,0,1,-1,1789992800,9007199254740991,-9007199254740991]');
  assert.equal(jcs([true, false, null, [], {}]), '[true,false,null,[],{}]');
});

test('the digest preimage of a field opening', () => {
  assert.equal(jcs(['c2FsdA', 'status', 'picked_up']), '["c2FsdA","status","picked_up"]');
});

test('floats, unsafe integers, lone surrogates and non-JSON values are refused', () => {
  for (const bad of [1.5, 2 ** 53, -(2 ** 53), NaN, Infinity, '\ud800', { '\udc00': 1 }, undefined, () => 1, 1n]) {
    assert.throws(() => jcs(bad), FormatError, String(bad));
  }
});
