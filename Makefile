# The two commands of the README, and a few helpers. Each sets up what it needs first.
.PHONY: run demo test tiny-models screenshots clean

OFFLINE_ENV = HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 GRADIO_ANALYTICS_ENABLED=False

run:  ## set up .venv and serve the app on http://127.0.0.1:7860
	scripts/setup.sh requirements.txt
	.venv/bin/python -m ui

demo: tiny-models  ## serve the app fully offline with tiny random models (answers are random text)
	$(OFFLINE_ENV) ASSISTANT_OFFLINE=true ASSISTANT_DATA_DIR=data-demo \
	ASSISTANT_MODEL__CHECKPOINT=$(CURDIR)/tiny-models/qwen2_5_vl \
	ASSISTANT_RETRIEVAL__EMBEDDER=$(CURDIR)/tiny-models/clip ASSISTANT_RETRIEVAL__TEXT_EMBEDDER= \
	.venv/bin/python -m ui

tiny-models:
	scripts/setup.sh requirements.txt
	[ -f tiny-models/clip/config.json ] || $(OFFLINE_ENV) .venv/bin/python -m tests.helpers.tiny_models tiny-models

test:  ## set up .venv (with test tools) and Chromium, then run the whole suite offline
	scripts/setup.sh requirements-dev.txt
	scripts/install-system-deps.sh
	$(OFFLINE_ENV) .venv/bin/python -m pytest

screenshots: tiny-models  ## regenerate docs/*.png
	.venv/bin/python scripts/screenshots.py docs

clean:
	rm -rf tiny-models data-demo test-artifacts .pytest_cache
