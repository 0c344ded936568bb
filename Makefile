# The two set-up commands of the README: `make run` (the demo mesh) and `make test` (every test).
# Both bootstrap uv with pip when it is missing and install from the committed uv.lock, with the
# openmetadata and postgres extras (local-embeddings is left out: it pulls several GB of torch).

UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
WORKSPACE ?= meshpilot-workspace

.PHONY: run test setup llama-server

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode --extra openmetadata --extra postgres

run: setup
	$(UV) run --no-sync meshpilot demo --force --workspace $(WORKSPACE)
	$(UV) run --no-sync meshpilot chat "who owns the customer lifetime value product and what feeds it?" --workspace $(WORKSPACE)

# llama.cpp's server for the real local model tests, built once per machine (scripts/llama-server.sh).
llama-server:
	@scripts/llama-server.sh

test: setup llama-server
	$(UV) run --no-sync pytest
