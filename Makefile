# One entry point for set-up, demo, tests and lint; CI (.ci/run) uses the same targets.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

EAS_SPEC      := @ethereum-attestation-service/eas-contracts@1.9.0
EAS_INTEGRITY := sha512-L60y1fgKlY3a45xxnPlgRbiGQY8RF/lF+AzF1iVoR7/aEzitS0Nuyyjq8+IXs1sSSU0dl2+yGSmELxVeB6FelA==
EAS_DIR       := node_modules/@ethereum-attestation-service/eas-contracts

.PHONY: setup setup-node setup-bench bench bench-smoke demo demo-anvil run stop test test-js test-fast lint lint-contracts slither fmt gas contracts clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup-node: node_modules/.package-lock.json

## The gas benchmark's baseline, the Ethereum Attestation Service: the contract sources of its
## npm package, pinned by version and checked against the registry's sha512, unpacked without
## the package's own dependencies (they pull in Hardhat, which this project does not use).
## They compile against our pinned OpenZeppelin (scripts/benchkit/gas.py).
$(EAS_DIR)/package.json: node_modules/.package-lock.json
	rm -rf $(EAS_DIR) node_modules/.eas-pack
	mkdir -p node_modules/.eas-pack $(EAS_DIR)
	cd node_modules/.eas-pack && npm pack --silent $(EAS_SPEC) >/dev/null
	node -e 'const c=require("crypto"),f=require("fs"),p=process.argv[1];const h="sha512-"+c.createHash("sha512").update(f.readFileSync(p)).digest("base64");if(h!==process.argv[2]){console.error("EAS tarball "+h+" is not the pinned "+process.argv[2]);process.exit(1)}' node_modules/.eas-pack/*.tgz '$(EAS_INTEGRITY)'
	tar -xzf node_modules/.eas-pack/*.tgz -C $(EAS_DIR) --strip-components=1
	rm -rf node_modules/.eas-pack

setup-bench: setup setup-node $(EAS_DIR)/package.json

## The demo needs no Node: it reads the committed contract artifacts.
demo: setup
	$(VENV)/bin/parcelproof demo

demo-anvil: setup setup-node
	$(PY) scripts/demo_on_anvil.py

## A full local system: the persistent devnet (anvil under data/devnet, ledger deployed once, node
## settings in data/node.env) and the courier node's API with its anchoring worker. `make stop`
## stops the devnet; its chain is kept for the next `make run`.
run: setup setup-node
	$(VENV)/bin/parcelproof devnet up
	PARCELPROOF_ANCHOR_INTERVAL_SECONDS=$${PARCELPROOF_ANCHOR_INTERVAL_SECONDS:-5} \
	  $(VENV)/bin/parcelproof serve --env-file data/node.env

stop: setup
	$(VENV)/bin/parcelproof devnet down

## The tests compile the contract (solc from npm) and start anvil (npm) themselves; the browser
## tests drive Debian's chromium (skipped, with the reason, where it is not installed).
test: setup setup-node setup-bench test-js
	$(PY) -m pytest -q -n auto

## The in-browser verifier (backend/parcelproof/web/verifier.js) on the bundle vectors, in Node.
test-js: setup-node
	node --test tests/js/

test-fast: setup
	$(PY) -m pytest -q -m "not anvil" tests/unit

lint: setup lint-contracts slither
	$(VENV)/bin/ruff check backend tests scripts
	$(VENV)/bin/ruff format --check backend tests scripts
	$(VENV)/bin/mypy

## Contract checks (docs/security-checks.md): solhint, pinned in package.json, rules in .solhint.json;
## Slither in its own venv (.venv/slither, made on first use), compiling with the npm solc, each
## accepted finding triaged in scripts/slither.py.
lint-contracts: setup-node
	node_modules/.bin/solhint --disc --noPoster --max-warnings 0 'contracts/**/*.sol'

slither: setup setup-node
	$(PY) scripts/slither.py

fmt: setup
	$(VENV)/bin/ruff format backend tests scripts
	$(VENV)/bin/ruff check --fix backend tests scripts

gas: setup
	$(PY) scripts/gas.py

## The performance benchmark (scripts/bench.py): gas against a naive contract and EAS, the node's
## ingest, anchoring latency and lookups on PostgreSQL and SQLite, proofs against log size, in
## one run on one fresh anvil. `bench` rewrites docs/benchmarks.md and docs/benchmarks/*.png;
## `bench-smoke` is the reduced run, into a temporary directory.
bench: setup setup-node setup-bench
	$(PY) scripts/bench.py --write-docs

bench-smoke: setup setup-node setup-bench
	$(PY) scripts/bench.py --smoke

contracts: setup setup-node
	$(VENV)/bin/parcelproof contracts build

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
