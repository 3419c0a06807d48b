"""The gas benchmark (scripts/benchkit/gas.py) on smoke sizes against a real anvil: ParcelProof
amortises its checkpoint over the batch, the naive contract and EAS pay per milestone, and the
naive baseline refuses duplicates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from web3.exceptions import ContractCustomError

from parcelproof.chain import devnet
from parcelproof.chain.devnet import Anvil
from parcelproof.chain.ledger import revert_from_exception
from parcelproof.core.errors import ChainError

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from benchkit import Section, gas  # noqa: E402

pytestmark = pytest.mark.anvil

SMOKE = (1, 10)
COLUMNS = ("k", "pp_tx", "pp", "naive", "eas", "multi")


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip(" †×"))  # noqa: RUF001


def _rows(markdown: str) -> dict[int, dict[str, float]]:
    """The side-by-side table's numbers by batch size."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0].replace(",", "").isdigit():
            values = dict(zip(COLUMNS, map(_number, cells), strict=False))
            rows[int(values["k"])] = values
    return rows


@pytest.fixture(scope="module")
def section(anvil_node: Anvil, tmp_path_factory: pytest.TempPathFactory) -> Section:
    return gas.run(anvil_node.url, sizes=SMOKE, plot_dir=tmp_path_factory.mktemp("plots"))


def test_section_has_the_side_by_side_table_headline_and_plot(section: Section) -> None:
    assert section.title == "Gas per milestone"
    md = section.markdown
    for column in (
        "ParcelProof gas/milestone",
        "Naive contract gas/milestone",
        "EAS attest gas/milestone",
        "EAS multiAttest gas/milestone",
        "Naive ÷ ParcelProof",
        "EAS attest ÷ ParcelProof",
    ):
        assert column in md
    assert sorted(_rows(md)) == list(SMOKE)
    assert "anvil" in md and "solc 0.8.30" in md
    assert f"{gas.EAS_PACKAGE} {gas.eas_version()}" in md
    what, measured, target, met = section.headline[0]
    assert what == "ParcelProof gas per milestone at batches of 10"  # 1,000 is not in SMOKE
    assert target == "≤ 100"
    assert met is (_number(measured) <= 100)
    assert any(row[0].startswith("Naive contract ÷ ParcelProof") for row in section.headline)
    assert any(row[0].startswith("EAS attest ÷ ParcelProof") for row in section.headline)
    (plot,) = section.plots
    assert plot.name == "gas-per-milestone.png"
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_parcelproof_amortises_one_checkpoint_over_the_batch(section: Section) -> None:
    rows = _rows(section.markdown)
    one, ten = rows[1], rows[10]
    assert one["pp"] == one["pp_tx"] > 21_000  # a whole transaction, intrinsic gas included
    assert ten["pp"] == pytest.approx(ten["pp_tx"] / 10, abs=1)
    # The checkpoint costs about the same whatever it covers, so per milestone it falls ~1/k.
    assert 0.8 < ten["pp_tx"] / one["pp_tx"] < 1.3
    assert ten["pp"] < one["pp"] / 5


def test_naive_and_eas_pay_the_same_per_milestone_at_any_batch_size(section: Section) -> None:
    rows = _rows(section.markdown)
    one, ten = rows[1], rows[10]
    for system in ("naive", "eas"):
        assert ten[system] == pytest.approx(one[system], rel=0.01)
        assert ten[system] > 5 * ten["pp"]  # far above ParcelProof at k = 10
    assert one["eas"] > one["naive"] > 21_000
    # One multiAttest call saves EAS the repeated intrinsic gas, not the per-attestation storage.
    assert ten["pp"] < ten["multi"] < ten["eas"]


def test_naive_contract_refuses_a_duplicate_hash(anvil_node: Anvil) -> None:
    w3 = devnet.connect(anvil_node.url)
    (account,) = devnet.funded_accounts(w3, 1)
    rpc = gas.Rpc(anvil_node.url)
    naive = gas.compile_naive()
    sender = gas.Sender(rpc, account, int(w3.eth.chain_id))
    address = sender.deploy(naive.creation())
    (milestone,) = gas.milestones("duplicate test", 0, 1)
    record = naive.calldata("record", milestone)
    limit = sender.estimate(address, record)
    (first,) = sender.send([gas.Call(address, record, limit)])
    contract = w3.eth.contract(address=address, abi=naive.abi)
    assert contract.functions.recordedAtBlock(milestone).call() == int(first["blockNumber"], 16)

    with pytest.raises(ContractCustomError) as refused:
        contract.functions.record(milestone).call({"from": account.address})
    error = revert_from_exception(naive.abi, refused.value)
    assert error is not None
    assert (error.name, error.args_) == ("NaiveAnchorAlreadyRecorded", (milestone,))
    with pytest.raises(ChainError, match="reverted"):
        sender.send([gas.Call(address, record, limit)])


def test_batch_sizes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        gas.measure("http://127.0.0.1:9", sizes=(0, 10))
