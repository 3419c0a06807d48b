// The JSON-RPC ledger view: ABI in step with the contract artifact, reverts, wrong chains.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Interface } from '../../backend/parcelproof/web/vendor/ethers.min.js';
import {
  ChainError, ContractRevertError, LEDGER_ABI, rpcLedger, verifyBundle,
} from '../../backend/parcelproof/web/verifier.js';

const artifact = JSON.parse(readFileSync(new URL('../../contracts/artifacts/ParcelLedger.json', import.meta.url), 'utf8'));
const vector = JSON.parse(readFileSync(new URL('../vectors/bundles/valid-handoff-delivery.json', import.meta.url), 'utf8'));
const contract = new Interface(artifact.abi);
const ours = new Interface(LEDGER_ABI);

test('the verifier ABI matches the ParcelLedger artifact', () => {
  ours.forEachFunction((fn) => {
    const theirs = contract.getFunction(fn.name);
    assert.equal(fn.selector, theirs.selector, fn.name);
    assert.equal(fn.format('full'), theirs.format('full'));
  });
  ours.forEachError((e) => assert.equal(e.selector, contract.getError(e.name).selector, e.name));
});

/** A fake JSON-RPC node answering from the vector's ledger facts, as anvil would. */
function fakeNode({ chainId = 31337, revertAll = false } = {}) {
  const roots = new Map(vector.ledger.checkpoints.map((c) => [`${c.logId}:${c.size}`, c.root]));
  const calls = [];
  const fetch = async (_url, init) => {
    const { id, method, params } = JSON.parse(init.body);
    calls.push(method);
    const answer = (body) => ({ ok: true, status: 200, json: async () => ({ jsonrpc: '2.0', id, ...body }) });
    if (method === 'eth_chainId') return answer({ result: '0x' + chainId.toString(16) });
    const tx = contract.parseTransaction({ data: params[0].data });
    if (tx.name === 'checkpointRoot') {
      const root = roots.get(`${tx.args[0]}:${tx.args[1]}`);
      if (revertAll || !root) {
        const data = contract.encodeErrorResult('ParcelLedgerUnknownCheckpoint', [tx.args[0], tx.args[1]]);
        return answer({ error: { code: 3, message: 'execution reverted: custom error', data } });
      }
      return answer({ result: contract.encodeFunctionResult('checkpointRoot', [root]) });
    }
    return answer({ result: contract.encodeFunctionResult('isAgentKeyValid', [true]) });
  };
  return { fetch, calls };
}

test('a valid bundle verifies through eth_call; the chain id is asked once', async () => {
  const node = fakeNode();
  const ledger = rpcLedger('http://node.invalid', 31337, vector.ledger.ledger, { fetch: node.fetch });
  const report = await verifyBundle(vector.bundle, ledger);
  assert.equal(report.ok, true, JSON.stringify(report.checks.filter((c) => !c.ok)));
  assert.equal(node.calls.filter((m) => m === 'eth_chainId').length, 1);
});

test('a checkpointRoot revert fails the checkpoint check with the decoded error', async () => {
  const node = fakeNode({ revertAll: true });
  const ledger = rpcLedger('http://node.invalid', 31337, vector.ledger.ledger, { fetch: node.fetch });
  await assert.rejects(ledger.checkpointRoot(vector.bundle.logs[0].logId, 3), ContractRevertError);
  const report = await verifyBundle(vector.bundle, ledger);
  const failed = report.checks.filter((c) => !c.ok);
  assert.deepEqual([...new Set(failed.map((c) => c.name))], ['checkpoint']);
  assert.match(failed[0].detail, /^ParcelLedgerUnknownCheckpoint\(0x[0-9a-f]{64}, 3\)$/);
});

test('a node serving another chain, or none at all, is a ChainError (nothing concluded)', async () => {
  const other = rpcLedger('http://node.invalid', 31337, vector.ledger.ledger, { fetch: fakeNode({ chainId: 1 }).fetch });
  await assert.rejects(verifyBundle(vector.bundle, other), ChainError);
  const down = rpcLedger('http://node.invalid', 31337, vector.ledger.ledger, { fetch: async () => { throw new TypeError('fetch failed'); } });
  await assert.rejects(verifyBundle(vector.bundle, down), /cannot read the chain/);
});
