# Two entry points: `make demo` and `make test`. Both set up whatever is missing first.
# `make help` lists the targets: each documented by a `## ` comment on its own line.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NATIVE_SRC := $(wildcard native/src/*.c native/include/*.h native/*.h native/*.py)
SOLIDITY := $(wildcard chains/contracts/*.sol chains/contracts/anchors/*.sol) chains/contracts/compile.js
DEMO_DIR ?= .devnet
# The demo runs a committee: DEMO_COMMITTEE member daemons, DEMO_THRESHOLD signatures per epoch.
DEMO_COMMITTEE ?= 3
DEMO_THRESHOLD ?= 2

.PHONY: help setup tools demo demo-lie test unit lint pytest bench bench-gas bench-scale bench-relay bench-committee bench-latency bench-anchor-latency bench-failover bench-dust bench-reorg bench-pullpath bench-users fuzz memcheck clean

setup: $(VENV)/.stamp node_modules/.stamp chains/contracts/build/.stamp ## .venv, node_modules and the compiled contracts, where missing or stale

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.stamp: pyproject.toml $(NATIVE_SRC)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

chains/contracts/build/.stamp: $(SOLIDITY) node_modules/.stamp
	node chains/contracts/compile.js
	touch $@

demo: setup ## a committee of DEMO_COMMITTEE daemons relaying between two local anvil chains
	$(BIN)/relayer devnet --dir $(DEMO_DIR) --committee $(DEMO_COMMITTEE) --threshold $(DEMO_THRESHOLD)

demo-lie: setup ## a colluding 2-of-3 majority behind a fake chain: refused (require-anchor), voided by a watchtower (committee)
	$(BIN)/python -m tests.integration.demo_lie --dir $(DEMO_DIR)-lie

# Debian tools the tests use: promtool (prometheus), systemd-analyze (systemd), clang with
# libFuzzer (clang-14, libclang-rt-14-dev), valgrind and the PostgreSQL server (postgresql: initdb
# and pg_ctl in /usr/lib/postgresql/<major>/bin, for tests/pg.py). Installed when missing and run as root.
TOOL_PACKAGES := prometheus systemd clang-14 libclang-rt-14-dev valgrind postgresql
tools: ## the Debian tools the tests use (promtool, systemd-analyze, clang-14 with libFuzzer, valgrind, postgresql)
	@command -v promtool >/dev/null && command -v systemd-analyze >/dev/null && command -v valgrind >/dev/null && \
	  ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && \
	  ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TOOL_PACKAGES); \
	  else echo "make: install the Debian packages $(TOOL_PACKAGES)"; fi; }

FUZZ_SECONDS ?= 600
fuzz: setup tools ## the libFuzzer harnesses for FUZZ_SECONDS (native/fuzz/run.sh)
	native/fuzz/run.sh $(FUZZ_SECONDS)

memcheck: setup tools ## valgrind memcheck over the vector seed corpus (native/memcheck/run.sh)
	native/memcheck/run.sh

lint: setup ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy relayer chains native bench

# The whole suite. PYTEST_WORKERS=N: in N pytest-xdist processes, each test file whole on one worker
# (its module fixtures: anvil nodes, devnets); 0 (the default): serially, in one process. N=4 took
# ~11 min instead of ~27 here, but one timing-window test still misses its window under that load.
PYTEST_WORKERS ?= 0
pytest: setup tools ## the whole test suite (PYTEST_WORKERS processes; 0: serially)
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: lint pytest ## lint, then the whole test suite (what CI runs)

# The unit and vectors tiers (markers: tests/conftest.py): no network, no chain node, no solc,
# no promtool or valgrind, no process per case (relayer CLI, node.js oracles), no hypothesis runs.
UNIT_MARKERS := not node and not tools and not process and not property
unit: setup ## the unit and vectors tests: no network, node, external tool or subprocess (under a minute)
	$(BIN)/python -m pytest -q -m "$(UNIT_MARKERS)"

bench: setup ## native snapshot verification vs py-trie, and Verkle vs the npm oracle (bench/__main__.py)
	$(BIN)/python -m bench

# 3,000 fresh depositors, then each deposits again, with the destination mining every 2 s.
SCALE_ACCOUNTS ?= 3000
SCALE_DEST_BLOCK_TIME ?= 2
bench-scale: setup ## SCALE_ACCOUNTS fresh depositors, then each deposits again (bench/scale.py)
	$(BIN)/python -m bench.scale --accounts $(SCALE_ACCOUNTS) --dest-block-time $(SCALE_DEST_BLOCK_TIME)
# Gas per settled account: v2 vs v1, single proofs, on-chain MPT and the storage floor, on a fresh
# anvil (Prague, 30M gas limit); writes bench/results/gas.json (bench/gas.py).
bench-gas: setup ## gas per settled account (bench/gas.py)
	$(BIN)/python -m bench.gas
# CHAINS source anvils x ACCOUNTS depositors each into one destination, the daemon as a process:
# seconds per stage, proving rate against anvil's own eth_getProof, peak RSS (bench/relay.py);
# adds its entry to bench/results/relay.json. Smaller: make bench-relay CHAINS=2 ACCOUNTS=1000
CHAINS ?= 10
ACCOUNTS ?= 10000
bench-relay: setup ## CHAINS sources x ACCOUNTS depositors into one destination (bench/relay.py)
	$(BIN)/python -m bench.relay --chains $(CHAINS) --accounts $(ACCOUNTS)
# The keeper API: /v1/proofs p50 / p99 at 64 epochs x 10,000 claims (a real store, epochs accepted by
# a real MarginSettlement on anvil), alone and with 100 requests/s, /healthz beside it, and the old
# scan path as the baseline; writes bench/results/pullpath.json (bench/pullpath.py). A few minutes.
bench-pullpath: setup ## the keeper API: /v1/proofs p50 / p99 (bench/pullpath.py)
	$(BIN)/python -m bench.pullpath
# Proven block to settlement, a 2-of-3 committee (three member daemons) against one relayer, the
# destination instant and mining every 2 s: COMMITTEE_DEPOSITS deposits each, p50 / p90 / max and
# the ratio; appends to bench/results/committee.json (bench/committee.py). About 5 minutes.
COMMITTEE_DEPOSITS ?= 20
bench-committee: setup ## proven block to settlement with a 2-of-3 committee (bench/committee.py)
	$(BIN)/python -m bench.committee --deposits $(COMMITTEE_DEPOSITS)

# The relayer's own share of block-to-settlement time on the demo devnet (50 accounts, one source):
# from the moment an epoch is due by the rule to its settlement.final, p50 (bench/latency.py);
# writes bench/results/latency.json. LATENCY_ARGS=--poll-only: without the WebSocket heads.
LATENCY_ARGS ?=
bench-latency: setup ## the relayer's share of block-to-settlement time on the demo devnet (bench/latency.py)
	$(BIN)/python -m bench.latency $(LATENCY_ARGS)

# Block-to-settled latency per collateral change, the OP Stack anchor mode (--anchor op-l1block,
# require-anchor: no L1 finality wait) against the source's finalized tag, one devnet each, the
# destination mining every 2 s; appends to bench/results/anchor-latency.json (bench/anchor_latency.py).
# About 3.5 minutes. ANCHOR_LATENCY_ARGS="--seconds 120" for more changes.
ANCHOR_LATENCY_ARGS ?=
bench-anchor-latency: setup ## OP Stack anchor mode vs finality wait: block-to-settled latency (bench/anchor_latency.py)
	$(BIN)/python -m bench.anchor_latency $(ANCHOR_LATENCY_ARGS)

FAILOVERS ?= 20
# kill -9 failovers of a member run as a standby pair (two processes on one PostgreSQL database,
# a throwaway cluster): takeover seconds after each leader death (target <= 12 s with the 10 s
# lease) and nonces, signatures and settlements done twice (target 0); bench/failover.py. ~6 min.
bench-failover: setup ## FAILOVERS kill -9 failovers of a standby pair: takeover time, doubles (bench/failover.py)
	$(BIN)/python -m bench.failover --failovers $(FAILOVERS)

# 1-wei deposits and withdrawal requests from distinct accounts, spaced over blocks: the relayer's
# destination gas per attacker source gas, with the default min_change_wei and with 0 side by
# side; writes bench/results/dust.json (bench/dust.py). About 2 minutes. DUST=6 per phase.
DUST ?= 6
bench-dust: setup ## 1-wei deposits: destination gas per attacker source gas (bench/dust.py)
	$(BIN)/python -m bench.dust --dust $(DUST)

# Destination reorgs (anvil_reorg) right after the relayer's submitAndSettle, the destination mining
# every 2 s: depth 1 with 0, 1 and 3 transactions in flight, depth 2 (finality) and 4 (past a final
# epoch), each on a fresh devnet: seconds to every account true again, fee vs the dropped ones,
# replacement max fee vs market (bench/reorg.py); adds REORG_LABEL to bench/results/reorg.json.
# A few minutes; a recovery is waited for at most REORG_LIMIT seconds. REORG_ARGS="--only 2 3".
REORG_LABEL ?= current
REORG_LIMIT ?= 180
REORG_ARGS ?=
bench-reorg: setup ## destination reorgs after submitAndSettle: recovery time and fees (bench/reorg.py)
	$(BIN)/python -m bench.reorg --label "$(REORG_LABEL)" --limit $(REORG_LIMIT) $(REORG_ARGS)

# One vault with USERS_ACCOUNTS depositors (seeded fast: a seeder contract at the vault's address,
# 1,000 deposits a block), the destination mining every USERS_DEST_BLOCK_TIME s, the daemon as a
# process: the first settlement, then epochs with USERS_CHANGES changed accounts, delta and full
# snapshots side by side (seconds from final, storage keys, eth_getProof calls, gas per account,
# peak RSS), and an RSS run with USERS_RSS_ACCOUNTS depositors (0: none); writes
# bench/results/users.json (bench/users.py). About 25 minutes at the defaults. Smaller:
# make bench-users USERS_ACCOUNTS=2000 USERS_CHANGES=20 USERS_RSS_ACCOUNTS=0
USERS_ACCOUNTS ?= 100000
USERS_CHANGES ?= 100 1000
USERS_DEST_BLOCK_TIME ?= 2
USERS_RSS_ACCOUNTS ?= 1000000
USERS_ARGS ?=
bench-users: setup ## one vault with USERS_ACCOUNTS depositors: delta vs full snapshots (bench/users.py)
	$(BIN)/python -m bench.users --accounts $(USERS_ACCOUNTS) --changes $(USERS_CHANGES) \
	  --dest-block-time $(USERS_DEST_BLOCK_TIME) --rss-accounts $(USERS_RSS_ACCOUNTS) $(USERS_ARGS)

clean: ## remove .venv, node_modules, builds and the demo directory
	rm -rf $(VENV) node_modules chains/contracts/build build *.egg-info native/_native.* $(DEMO_DIR) $(DEMO_DIR)-lie

help: ## this list
	@awk -F ':.*## ' '/^[a-z][a-z-]*:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
