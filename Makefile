# Two commands do all the set-up: `make run` and `make test`.
.PHONY: run test test-random bench sky serve-gpu clean

PORT ?= 8501
PYTEST_ARGS ?=

run:
	@scripts/setup_env.sh
	.venv/bin/streamlit run app.py --server.port $(PORT)

test:
	@scripts/setup_env.sh dev
	.venv/bin/ruff check .
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest -p no:randomly $(PYTEST_ARGS)

# The same suite in a random order (pytest-randomly prints the seed; PYTEST_ARGS=--randomly-seed=N repeats it).
test-random:
	@scripts/setup_env.sh dev
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest $(PYTEST_ARGS)

# SkyPilot (Nebius H100s and other clouds) in its own environment, .venv-sky.
sky:
	@scripts/setup_sky.sh

bench:
	@scripts/setup_env.sh
	.venv/bin/python bench/validate.py
	.venv/bin/python bench/train.py
	.venv/bin/python bench/remote.py

# GPU serving: vLLM needs its own pinned set (requirements-gpu.lock); RUN is a job id, run folder or model folder.
serve-gpu:
	@scripts/setup_env.sh
	test -x .venv-gpu/bin/vllm || (python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -r requirements-gpu.lock)
	.venv/bin/legalft serve start $(RUN) --kind vllm

clean:
	rm -rf .venv .venv-sky .pytest_cache
