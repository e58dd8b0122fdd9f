"""`bailong pretrain`: (Q)LoRA continual pre-training of the extended checkpoint on packed TC-heavy text."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import set_seed

from bailong.checkpoint import EXTENSION_FILE
from bailong.config import EmbeddingTrainingConfig, LoraConfig, PretrainConfig
from bailong.config_file import CONFIG_FILE, dump_config
from bailong.data.packing import build_training_data
from bailong.errors import BailongError
from bailong.loading import attach_lora, load_model, load_tokenizer, resolve_source
from bailong.runs import ADAPTER_DIR, METRICS_PNG, check_run_dir, finish_run
from bailong.trainer import train_model, training_arguments


def extension_metadata(name_or_path: str) -> dict | None:
    source = resolve_source(name_or_path)
    file = Path(source.path) / EXTENSION_FILE
    return json.loads(file.read_text(encoding="utf-8")) if source.is_local and file.is_file() else None


def all_linear_names(model) -> list[str]:
    """The names of the linear layers LoRA targets with `all-linear` (every one but the LM head)."""
    import torch

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.rsplit(".", 1)[-1])
    names.discard("lm_head")
    return sorted(names)


def adapter_options(model, lora: LoraConfig, embeddings: EmbeddingTrainingConfig, new_ids: list[int] | None) -> dict:
    """peft LoraConfig arguments for what trains: LoRA targets plus the embedding mode."""
    targets = all_linear_names(model) if lora.target_modules == "all-linear" else list(lora.target_modules)
    options: dict = {}
    if embeddings.train == "lora":  # the paper: LoRA on embed_tokens and lm_head too
        targets += ["embed_tokens", "lm_head"]
    elif embeddings.train == "new-rows":
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        options["trainable_token_indices"] = {"embed_tokens": new_ids} if tied else \
            {"embed_tokens": new_ids, "lm_head": new_ids}
    elif embeddings.train == "full":
        options["modules_to_save"] = ["embed_tokens", "lm_head"]
    options["target_modules"] = sorted(set(targets))
    return options


def preflight(cfg: PretrainConfig, tokenizer) -> dict | None:
    """Checks model, tokenizer and data settings against each other before any data is read; the extension metadata."""
    extension = extension_metadata(cfg.model.name_or_path)
    if cfg.embeddings.train == "new-rows" and not (extension and extension.get("new_token_ids")):
        raise BailongError(
            f"embeddings.train: new-rows needs the output of bailong extend-vocab as model.name_or_path "
            f"({cfg.model.name_or_path!r} has no {EXTENSION_FILE} with new token ids)"
        )
    if resolve_source(cfg.model.name_or_path).kind != "run":
        check_model_fits(cfg.model, cfg.model.name_or_path, tokenizer, ("data.block_size", cfg.data.block_size))
    return extension


def check_model_fits(model_cfg, name_or_path: str, tokenizer, length: tuple[str, int]) -> None:
    """The model (by its config alone) has room for `length` = (key, tokens) and for every token of `tokenizer`."""
    from transformers import AutoConfig

    source = resolve_source(name_or_path)
    config = AutoConfig.from_pretrained(source.path, revision=model_cfg.revision,
                                        trust_remote_code=model_cfg.trust_remote_code,
                                        **({"gguf_file": source.gguf_file} if source.gguf_file else {}))
    key, tokens = length
    context = getattr(config, "max_position_embeddings", None)
    if context and tokens > context:
        raise BailongError(f"{key}={tokens} is above the model's context of {context} tokens; lower {key}")
    rows = getattr(config, "vocab_size", None)
    if rows and len(tokenizer) > rows:
        raise BailongError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {rows} embedding rows: they do not belong "
            "together; point model.tokenizer and model.name_or_path at the same run or extend-vocab output"
        )


def prepare_model(cfg: PretrainConfig, extension: dict | None):
    """The base through the loading core, made ready for k-bit training, with a fresh adapter attached."""
    model = load_model(cfg.model, cfg.quantization, gradient_checkpointing=cfg.train.gradient_checkpointing)
    new_ids = extension["new_token_ids"] if extension else None
    return attach_lora(model, cfg.lora, **adapter_options(model, cfg.lora, cfg.embeddings, new_ids))


def start_run(cfg, overwrite: bool):
    """(the run folder, checked and created; the base tokenizer) for a training stage."""
    run_dir = Path(cfg.output_dir)
    check_run_dir(run_dir, cfg, overwrite)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, load_tokenizer(cfg.model.tokenizer_source, revision=cfg.model.revision,
                                   trust_remote_code=cfg.model.trust_remote_code)


def pretrain(cfg: PretrainConfig, overwrite: bool = False) -> dict:
    run_dir, tokenizer = start_run(cfg, overwrite)
    extension = preflight(cfg, tokenizer)
    has_validation = bool(cfg.data.validation_files) or (cfg.data.validation > 0 and not cfg.data.streaming)
    args = training_arguments(cfg.train, run_dir, has_validation)  # before the model: it sets up the processes
    data = build_training_data(cfg.data, tokenizer, cfg.train.seed)
    set_seed(cfg.train.seed)  # the same fresh adapter on every process
    model = prepare_model(cfg, extension)
    trainable, total = model.get_nb_trainable_parameters()
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.2f}%)")
    (run_dir / CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")
    tokenizer.save_pretrained(run_dir)

    trainer = train_model(model, tokenizer, data, cfg.train, args, run_dir, embedding_lr=cfg.embeddings.learning_rate)
    metadata = finish_run(trainer, run_dir, cfg.model.name_or_path, {
        "stage": "pretrain",
        "trainable_parameters": trainable,
        "total_parameters": total,
        "embeddings_train": cfg.embeddings.train,
        "train_blocks": data.train_blocks,
    })
    if metadata:
        _print_summary(run_dir, metadata)
    return metadata


def _print_summary(run_dir: Path, metadata: dict) -> None:
    evals = [r for r in metadata["log"] if "eval_bits_per_char" in r]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        print(f"held-out bits per character: {first['eval_bits_per_char']:.3f} at step {first['step']} -> "
              f"{last['eval_bits_per_char']:.3f} at step {last['step']}")
    print(f"wrote {run_dir} ({metadata['steps']} steps; adapter in {run_dir / ADAPTER_DIR}, "
          f"curves in {run_dir / METRICS_PNG})")
