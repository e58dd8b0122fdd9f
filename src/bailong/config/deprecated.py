"""Old config key names that keep working for this release, each with a one-line notice naming the new key.

One place for every remap (as axolotl keeps them): a moved key `(old path, new path)` per stage, and renamed values.
"""

from __future__ import annotations

from collections.abc import Callable

MOVED_KEYS: dict[str, list[tuple[str, str]]] = {
    "extend-vocab": [
        ("embeddings", "new_rows"),  # the init of new rows; `embeddings` now always means what trains
        ("vocab.held_out", "data.validation"),  # one name for held-out text across stages
        ("data.on_decode_error", "data.on_bad_record"),  # one name for what happens to a bad record
    ],
    "pretrain": [("data.on_decode_error", "data.on_bad_record")],
    "sft": [],
    "eval": [],
}

# Keys replaced by another key whose values say the same thing differently: old path -> (new path, {old: new}).
REPLACED_KEYS: dict[str, dict[str, tuple[str, dict]]] = {
    "extend-vocab": {"vocab.cjk_only": ("vocab.scripts", {True: ["Han", "Bopomofo"], False: "all"})},
}

RENAMED_VALUES: dict[str, dict[str, dict[str, str]]] = {
    # train.precision uses torch's dtype names, as model.dtype and quantization.compute_dtype do
    "pretrain": {"train.precision": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}},
    "sft": {"train.precision": {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}},
}


def _pop(raw: dict, path: list[str]):
    node = raw
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return False, None
    if not isinstance(node, dict) or path[-1] not in node:
        return False, None
    return True, node.pop(path[-1])


def _put(raw: dict, path: list[str], value) -> bool:
    node = raw
    for key in path[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return False
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def apply_deprecations(stage: str, raw: dict, notify: Callable[[str], None]) -> dict:
    """Rewrites old keys and values in `raw` (in place) to the current names; `notify` gets one line for each."""
    for old, new in MOVED_KEYS.get(stage, []):
        found, value = _pop(raw, old.split("."))
        if not found:
            continue
        if not _put(raw, new.split("."), value):
            raise ValueError(f"{old} and {new} are the same setting; keep only {new}")
        notify(f"`{old}` is deprecated; use `{new}` (the old name works in this release)")
    for old, (new, values) in REPLACED_KEYS.get(stage, {}).items():
        found, value = _pop(raw, old.split("."))
        if not found:
            continue
        if isinstance(value, bool):
            shown = str(values[value]).replace("'", "")
            notify(f"`{old}: {str(value).lower()}` is deprecated; use `{new}: {shown}` (the old key works for now)")
            value = values[value]
        if not _put(raw, new.split("."), value):
            raise ValueError(f"{old} and {new} are the same setting; keep only {new}")
    for key, values in RENAMED_VALUES.get(stage, {}).items():
        path = key.split(".")
        found, value = _pop(raw, path)
        if not found:
            continue
        if isinstance(value, str) and value in values:
            notify(f"`{key}: {value}` is deprecated; use `{key}: {values[value]}`")
            value = values[value]
        _put(raw, path, value)
    return raw
