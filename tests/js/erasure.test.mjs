// Erasure receipts in the JS verifier: the published receipt verifies (same EIP-712 encoding as
// Python's core/eip712.py), against the courier's account; tampering or another signer fails.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Interface } from '../../backend/parcelproof/web/vendor/ethers.min.js';
import {
  ContractRevertError, FormatError, rpcLedger, verifyErasureReceipt,
} from '../../backend/parcelproof/web/verifier.js';

const vector = JSON.parse(readFileSync(new URL('../vectors/receipts/erasure-receipt.json', import.meta.url), 'utf8'));
const { receipt } = vector;
const ledger = (account, chainId = receipt.chain.chainId) => ({
  chainId,
  address: receipt.chain.ledger,
  async courierAccount(logId) {
    if (logId !== receipt.erasure.logId) throw new ContractRevertError(`ParcelLedgerUnknownCourier(${logId})`);
    return account;
  },
});
const copy = () => JSON.parse(JSON.stringify(receipt));

test('the published receipt verifies against the courier account', async () => {
  const result = await verifyErasureReceipt(receipt, ledger(vector.courierAccount));
  assert.equal(result.ok, true, result.detail);
  assert.equal(result.complete, true);
  const offline = await verifyErasureReceipt(receipt, null);
  assert.deepEqual([offline.ok, offline.complete], [true, false]);
});

test('a receipt signed by another account than the courier fails', async () => {
  const result = await verifyErasureReceipt(receipt, ledger('0x' + '11'.repeat(20)));
  assert.equal(result.ok, false);
  assert.match(result.detail, /anchoring account of courier/);
  const other = await verifyErasureReceipt(receipt, ledger(vector.courierAccount, 1));
  assert.equal(other.ok, false);
});

for (const [what, mutate] of [
  ['event count', (r) => { r.erasure.eventCount += 1; }],
  ['erasure time', (r) => { r.erasure.erasedAt -= 1; }],
  ['reason', (r) => { r.erasure.reason = 'legal'; }],
  ['shipment', (r) => { r.erasure.shipment = '0x' + '22'.repeat(32); }],
  ['claimed signer', (r) => { r.signer = '0x' + '33'.repeat(20); }],
]) {
  test(`a receipt with a changed ${what} fails`, async () => {
    const r = copy();
    mutate(r);
    const result = await verifyErasureReceipt(r, null);
    assert.equal(result.ok, false);
    assert.match(result.detail, /signature was made by/);
  });
}

test('malformed receipts are unusable', async () => {
  for (const mutate of [(r) => { r.extra = 1; }, (r) => { r.version = 2; }, (r) => { r.erasure.reason = 'A B'; },
    (r) => { r.signature = '0x12'; }, (r) => { delete r.erasure.logId; }]) {
    const r = copy();
    mutate(r);
    await assert.rejects(verifyErasureReceipt(r, null), FormatError);
  }
});

test('through JSON-RPC, the courier account is read with ParcelLedger.courier', async () => {
  const artifact = JSON.parse(readFileSync(new URL('../../contracts/artifacts/ParcelLedger.json', import.meta.url), 'utf8'));
  const contract = new Interface(artifact.abi);
  const fetch = async (_url, init) => {
    const { id, method, params } = JSON.parse(init.body);
    const answer = (body) => ({ ok: true, status: 200, json: async () => ({ jsonrpc: '2.0', id, ...body }) });
    if (method === 'eth_chainId') return answer({ result: '0x' + receipt.chain.chainId.toString(16) });
    const tx = contract.parseTransaction({ data: params[0].data });
    assert.equal(tx.name, 'courier');
    if (tx.args[0] !== receipt.erasure.logId) {
      const data = contract.encodeErrorResult('ParcelLedgerUnknownCourier', [tx.args[0]]);
      return answer({ error: { code: 3, message: 'execution reverted', data } });
    }
    const record = [vector.courierAccount, 1, 0, true, 3, 12, 2];
    return answer({ result: contract.encodeFunctionResult('courier', [record]) });
  };
  const chain = rpcLedger('http://node.invalid', receipt.chain.chainId, receipt.chain.ledger, { fetch });
  assert.equal((await verifyErasureReceipt(receipt, chain)).ok, true);
  const stranger = copy();
  stranger.erasure.logId = '0x' + '44'.repeat(32);
  const result = await verifyErasureReceipt(stranger, chain);
  assert.equal(result.ok, false); // the signature no longer matches either
  await assert.rejects(chain.courierAccount('0x' + '44'.repeat(32)), ContractRevertError);
});
