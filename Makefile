# Brightline customer-service bot. `make run` starts everything, `make test` tests everything.
PY ?= python3
DEVCTL = $(PY) scripts/devctl.py

.PHONY: setup train run reload test test-bot test-drill nlu-report lint bench clean

setup:  ## create/update .venv-rasa (Python 3.10, Rasa) and .venv (gateway)
	$(DEVCTL) setup

train:  ## train the Rasa model if data/, domain.yml or config.yml changed
	$(DEVCTL) train

run:  ## start the Rasa server and the action server (Ctrl-C stops them)
	$(DEVCTL) run

reload:  ## validate, train if needed, and load the new model into the running `make run`
	$(DEVCTL) reload

test:  ## validate data, run test stories, action tests and pytest
	$(DEVCTL) test

test-bot:  ## bot designers: validate data, train if needed, test stories, action tests, NLU report
	$(DEVCTL) test-bot

test-drill:  ## a new intent in a copy of the project passes test-bot and the gateway suites (CI)
	$(DEVCTL) test-drill

nlu-report:  ## the NLU on the held-out set tests/nlu/test_set.yml -> docs/bot-quality.md
	$(DEVCTL) nlu-report

bench:  ## benchmarks (bench/run.py): prints a table, writes bench/results/<date>.json + .png
	$(DEVCTL) setup
	$(DEVCTL) train
	.venv/bin/python -m bench.run

lint:  ## ruff + mypy + import layers (import-linter)
	$(DEVCTL) setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check scripts bot connectors handoff tests actions bench rasa_addons
	.venv/bin/mypy bot connectors handoff scripts bench
	.venv/bin/lint-imports
	.venv-rasa/bin/python -m compileall -q actions rasa_addons

clean:  ## remove environments, models and runtime files
	rm -rf .venv .venv-rasa models var
