# Two commands on a fresh machine (Python 3.11 is all it needs):
#   make up     run Imagetron (embedded: no Docker, no accounts)
#   make test   lint, type-check and run every test against real servers
.PHONY: up test lint contracts bootstrap bench

UV_VERSION := 0.13.9
UV := python3 -m uv
export UV_PYTHON_DOWNLOADS := never

# Bytecode compiled once here (the dependencies and our own sources) rather than by every
# interpreter that imports them: where PYTHONDONTWRITEBYTECODE is set (as on the development
# machines) nothing caches it otherwise, and `imagetron up`'s processes compiled about 7,600
# modules from source at every start (15.6 s to ready instead of 7.8 s, 4 Dec 2026).
bootstrap:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	@$(UV) sync --frozen --all-packages --quiet --compile-bytecode
	@$(UV) run --frozen python -m compileall -q -j 0 src libs/*/src services/*/src sandbox/src contracts/src >/dev/null

up: bootstrap
	$(UV) run imagetron up

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

contracts: bootstrap
	$(UV) run python contracts/generate.py
	$(UV) run python -m imagetron.nats_users

# Coverage of statements and branches, the services' and the sandbox's child processes
# included (pyproject.toml: [tool.coverage]). Two workers, a test file each at a time (each
# starts its own servers): most of the suite waits on servers and events, so two halve the
# run on two cores (CI, 4 Dec 2026: 833 s -> 549 s).
test: lint
	$(UV) run pytest -n 2 --dist loadfile --durations=25 --cov --cov-report=term:skip-covered

# Every benchmark in bench/ against the embedded stack, one table (docs/benchmarks.md reads
# it); several minutes and both cores: run it on a machine that is otherwise quiet.
bench: bootstrap
	$(UV) run python bench/run.py --out artifacts/bench.md
