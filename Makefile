# detr_ft: `make run` and `make test` are all a fresh machine needs.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,test,onnx,bench]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install detr_ft with dev tools (skipped when up to date)

test: install ## run the whole test suite, in parallel, then list the 20 slowest tests
	$(PY) -m pytest -n auto --dist loadfile --durations=20 $(ARGS)

test-fast: install ## the inner loop: every test that starts no Python process (not the slow tier), in parallel
	$(PY) -m pytest -n auto --dist loadfile -m "not slow" $(ARGS)

run: install ## the main job: fine-tune the shipped checkpoint on the built-in data
	$(PY) -m detr_ft experiment=quickstart $(ARGS)

pretrain: install ## reproduce detr_ft/assets/synthetic_pretrained.ckpt: backbone, then DETR (prints how long it took)
	@start=$$(date +%s); dir=outputs/pretrain_synthetic/$$(date +%Y%m%d-%H%M%S); \
	$(PY) -m detr_ft.pretrain_backbone data=synthetic output=$$dir/backbone.pt hydra.run.dir=$$dir/backbone && \
	$(PY) -m detr_ft experiment=pretrain_synthetic model.backbone.weights=$$dir/backbone.pt \
		hydra.run.dir=$$dir/detr $(ARGS) && \
	$(PY) -m detr_ft.export checkpoint=$$dir/detr/checkpoints/last.ckpt \
		output=detr_ft/assets/synthetic_pretrained.ckpt overwrite=true && \
	echo "make pretrain took $$(( $$(date +%s) - start )) s"

bench: install ## speed and memory benchmarks (prints figures)
	$(PY) -m benchmarks $(ARGS)

ui: install ## start the MLflow UI on the default store (sqlite:///mlflow.db)
	@echo "MLflow UI: http://127.0.0.1:5000  (Ctrl-C to stop; pick 'Model training' at the top left for the runs)"
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

sweep: install ## a small CPU sweep (3 strategies) on synthetic data, then the comparison table
	$(PY) -m detr_ft --multirun experiment=compare_strategies $(ARGS)
	$(PY) -m detr_ft.compare

mutate: install ## break chosen lines of the recipe on purpose and report which breaks the tests miss
	$(PY) -m tools.mutate $(ARGS)

lint: install ## ruff
	$(VENV)/bin/ruff check .

clean: ## remove run outputs and caches (keeps .venv and mlflow.db)
	rm -rf outputs multirun .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: help install test test-fast run pretrain bench ui sweep mutate lint clean
