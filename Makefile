# Two commands do all the set-up: `make run` and `make test`.
.PHONY: run test bench setup clean

PORT ?= 8501
PYTEST_ARGS ?=

run:
	@scripts/setup_env.sh
	.venv/bin/streamlit run app.py --server.port $(PORT)

test:
	@scripts/setup_env.sh dev
	HF_HUB_OFFLINE=1 .venv/bin/python -m pytest $(PYTEST_ARGS)

bench:
	@scripts/setup_env.sh
	.venv/bin/python bench/validate.py
	.venv/bin/python bench/train.py

clean:
	rm -rf .venv .pytest_cache
