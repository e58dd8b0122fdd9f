"""Reading a stage's YAML config: `--set` overrides, relative paths, one clear message per mistake.

Relative paths in a config file resolve against that file's folder; relative paths given with `--set`
resolve against the current directory.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from bailong.config import DATA_SUFFIXES, STAGE_CONFIGS, PathMarker, StageConfig
from bailong.errors import BailongError

CONFIG_FILE = "bailong_config.yaml"  # the resolved config, saved in every stage's output
_LOCAL_SUFFIXES = DATA_SUFFIXES + (".model", ".gguf", ".yaml")


def _resolve(value: str, base: Path, always: bool) -> str:
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    candidate = base / expanded
    looks_local = always or value.startswith((".", "~")) or candidate.exists() or value.endswith(_LOCAL_SUFFIXES)
    return str(candidate.resolve()) if looks_local else value



def _path_marker(annotation: Any) -> PathMarker | None:
    for arg in getattr(annotation, "__metadata__", ()):
        if isinstance(arg, PathMarker):
            return arg
    for arg in get_args(annotation):
        marker = _path_marker(arg)
        if marker:
            return marker
    return None


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _submodel(arg)
        if found:
            return found
    return None


def resolve_paths(raw: Any, model: type[BaseModel], base: Path) -> Any:
    """Returns `raw` with every path-typed value made absolute against `base`."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for key, value in raw.items():
        field = model.model_fields.get(key)
        if field is None or value is None:
            continue
        marker = next((m for m in field.metadata if isinstance(m, PathMarker)), None) or _path_marker(field.annotation)
        sub = _submodel(field.annotation)
        if marker and isinstance(value, str):
            out[key] = _resolve(value, base, marker.always)
        elif marker and isinstance(value, list):
            out[key] = [_resolve(v, base, marker.always) if isinstance(v, str) else v for v in value]
        elif sub and isinstance(value, dict):
            out[key] = resolve_paths(value, sub, base)
        elif sub and isinstance(value, list) and get_origin(field.annotation) is list:
            out[key] = [resolve_paths(v, sub, base) for v in value]
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b=value` -> (['a', 'b'], YAML-parsed value)."""
    if "=" not in item:
        raise BailongError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_steps=10")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise BailongError(f"--set {item!r}: the value is not valid YAML ({exc.problem})") from None
    return key.strip().split("."), value


def apply_override(raw: dict, keys: list[str], value: Any, item: str) -> None:
    node = raw
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise BailongError(f"--set {item!r}: {key} is not a section")
        node = child
    node[keys[-1]] = value


def load_config(stage: str, path: Path, overrides: list[str] = ()) -> StageConfig:
    """Reads, resolves and validates the YAML config of `stage`; raises BailongError with one clear message."""
    model = STAGE_CONFIGS[stage]
    path = Path(path)
    if not path.is_file():
        raise BailongError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BailongError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BailongError(f"{path}: the top level must be a mapping of sections (model:, data:, ...)")
    raw = resolve_paths(raw, model, path.resolve().parent)
    for item in overrides:
        keys, value = parse_override(item)
        nested: dict = {}
        apply_override(nested, keys, value, item)
        nested = resolve_paths(nested, model, Path.cwd())
        _deep_merge(raw, nested)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BailongError(f"{path}: " + format_validation_error(exc, model)) from None


def _deep_merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


_TYPE_WORDS = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "bool_parsing": "true or false", "bool_type": "true or false",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
}


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            valid = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(valid)}"
            lines.append(f"{key}: unknown key; {hint}")
        elif kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind in _TYPE_WORDS:
            lines.append(f"{key}: expected {_TYPE_WORDS[kind]}, got {err.get('input')!r}")
        elif kind == "literal_error":
            lines.append(f"{key}: got {err.get('input')!r}; {err['msg'].lower()}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}")
    return "; ".join(lines)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        current = _submodel(field.annotation) if field else None
    return current


def dump_config(config: StageConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
