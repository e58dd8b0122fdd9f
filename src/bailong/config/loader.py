"""Reading a stage's YAML config: `--set` overrides, relative paths, one clear message per mistake.

Relative paths in a config file resolve against that file's folder; relative paths given with `--set`
resolve against the current directory.
"""

from __future__ import annotations

import difflib
import os
import sys
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from bailong.artifacts import CONFIG_FILE
from bailong.config.base import DATA_SUFFIXES, PathMarker
from bailong.config.deprecated import apply_deprecations
from bailong.config.stages import STAGE_CONFIGS, StageConfig
from bailong.errors import BailongError

__all__ = ["CONFIG_FILE", "dump_config", "load_config"]
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


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    """The config models inside an annotation (several for a union such as the eval task types)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _submodels(arg)]


def _submodel(annotation: Any, raw: Any = None) -> type[BaseModel] | None:
    """The model for `raw` inside `annotation`: the only one, or the union member whose `type` tag `raw` names."""
    models = _submodels(annotation)
    if len(models) > 1 and isinstance(raw, dict):
        tagged = [m for m in models if raw.get("type") in get_args(m.model_fields.get("type").annotation)]
        return tagged[0] if tagged else None
    return models[0] if models else None


def _union_tags(annotation: Any) -> set[str]:
    models = _submodels(annotation)
    if len(models) < 2:
        return set()
    return {tag for m in models if "type" in m.model_fields for tag in get_args(m.model_fields["type"].annotation)}


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
        sub = _submodel(field.annotation, value)
        if marker and isinstance(value, str):
            out[key] = _resolve(value, base, marker.always)
        elif marker and isinstance(value, list):
            out[key] = [_resolve(v, base, marker.always) if isinstance(v, str) else v for v in value]
        elif sub and isinstance(value, dict):
            out[key] = resolve_paths(value, sub, base)
        elif _submodels(field.annotation) and isinstance(value, list) and get_origin(field.annotation) is list:
            out[key] = [
                resolve_paths(v, _submodel(field.annotation, v), base) if _submodel(field.annotation, v) else v
                for v in value
            ]
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
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise BailongError(f"{path}: the top level must be a mapping of sections (model:, data:, ...)")
    raw = resolve_paths(_renamed(stage, raw, str(path)), model, path.resolve().parent)
    for item in overrides:
        keys, value = parse_override(item)
        nested: dict = {}
        apply_override(nested, keys, value, item)
        nested = resolve_paths(_renamed(stage, nested, f"--set {item}"), model, Path.cwd())
        _deep_merge(raw, nested)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise BailongError(f"{path}: " + format_validation_error(exc, model)) from None


def _read_yaml(path: Path) -> Any:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:200]:
        raise BailongError(f"{path}: the file is UTF-16, not UTF-8; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BailongError(f"{path}: byte {exc.start} is not UTF-8; save the file as UTF-8") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise BailongError(f"{path}:{_yaml_problem(exc, text)}") from None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """`line:column: what is wrong; how to fix it` for PyYAML's multi-line message."""
    mark = getattr(exc, "problem_mark", None)
    if mark is None:
        return f" not valid YAML ({exc})"
    problem = getattr(exc, "problem", None) or "not valid YAML"
    line = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
    if "\t" in problem or line[: mark.column + 1].strip(" ") == "\t" or line.lstrip(" ").startswith("\t"):
        fix = "indent with spaces; YAML does not allow tabs"
    else:
        fix = "check the indentation, brackets and quotes"
        start = getattr(exc, "context_mark", None)
        if getattr(exc, "context", None) and start is not None:
            fix = f"{exc.context.removeprefix('while ')} that starts at {start.line + 1}:{start.column + 1}; " + fix
    return f"{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}; {fix}"


def _renamed(stage: str, raw: dict, where: str) -> dict:
    def notify(message: str) -> None:
        print(f"deprecated: {where}: {message}", file=sys.stderr)

    try:
        return apply_deprecations(stage, raw, notify)
    except ValueError as exc:
        raise BailongError(f"{where}: {exc}") from None


def _deep_merge(into: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    lines = []
    for err in exc.errors():
        where = _without_tags(model, err["loc"])
        loc = [str(p) for p in where]
        key = ".".join(loc) or "(top level)"
        kind = err["type"]
        if kind == "union_tag_invalid" or kind == "union_tag_not_found":
            tags = ", ".join(sorted(_union_tags(_field_at(model, err["loc"]))))
            got = (err.get("input") or {}).get("type") if isinstance(err.get("input"), dict) else None
            lines.append(
                f"{key}.type: " + (f"got {got!r}; expected one of {tags}" if got else f"required: one of {tags}")
            )
        elif kind == "extra_forbidden":
            parent = _model_at(model, err["loc"][:-1])
            valid = list(parent.model_fields) if parent else []
            close = difflib.get_close_matches(loc[-1], valid, n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys here: {', '.join(valid)}"
            lines.append(f"{key}: unknown key; {hint}")
        elif kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif kind in _TYPE_WORDS:
            lines.append(f"{key}: expected {_TYPE_WORDS[kind]}, got {err.get('input')!r}")
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short"):
            lines.append(f"{key}: got {err.get('input')!r}; {err['msg'].lower()}")
        elif kind == "literal_error":
            lines.append(f"{key}: got {err.get('input')!r}; {err['msg'].lower()}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {msg}")
    return "; ".join(lines)


def _walk(model: type[BaseModel], loc: tuple):
    """Follows a validation error's `loc` through the config models: (part, whether it is a union tag that pydantic
    inserted, the model reached after it)."""
    current: type[BaseModel] | None = model
    annotation = None
    for part in loc:
        if isinstance(part, int) or current is None:
            yield part, False, current
            continue
        if annotation is not None and part in _union_tags(annotation):
            current, annotation = _submodel(annotation, {"type": part}), None
            yield part, True, current
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field else None
        current = _submodel(annotation) if field else None
        if annotation is not None and len(_submodels(annotation)) < 2:
            annotation = None
        yield part, False, current


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config model at `loc` of a validation error (a union member is named by its tag in `loc`)."""
    steps = list(_walk(model, loc))
    return steps[-1][2] if steps else model


def _without_tags(model: type[BaseModel], loc: tuple) -> list:
    """`loc` without the union tags pydantic inserts (tasks.0.bpc.window -> tasks.0.window)."""
    return [part for part, is_tag, _ in _walk(model, loc) if not is_tag]


def _field_at(model: type[BaseModel], loc: tuple) -> Any:
    parent = _model_at(model, tuple(p for p in loc if not isinstance(p, int))[:-1])
    field = parent.model_fields.get(str(loc[-1] if not isinstance(loc[-1], int) else loc[-2])) if parent else None
    return field.annotation if field else None


def dump_config(config: StageConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
