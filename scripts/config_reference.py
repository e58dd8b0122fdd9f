"""Writes docs/configuration.md, the configuration reference, from the pydantic models of every stage's config.

python scripts/config_reference.py           # rewrite docs/configuration.md
python scripts/config_reference.py --check   # exit 1 if it is out of date (tests/test_docs.py runs this)
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from bailong.config import STAGE_CONFIGS

OUT = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
HEADER = """# Configuration reference

Generated from the pydantic models in `src/bailong/config/` by `python scripts/config_reference.py`; a test fails when
it is out of date. Every stage's config is YAML; unknown keys are errors that name the key path and suggest the
closest valid key. Relative paths in a config resolve against the config file's folder, those given with `--set`
against the current directory. `bailong STAGE CONFIG --print-config` prints a config with every default filled in.
How the keys fit together, with examples: [getting started](getting-started.md#configs).
"""


def _models(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


def _type(annotation) -> str:
    """A type as a reader writes it in YAML: `path`, `int or null`, `one of: a, b`, `list of path`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        marked = any(type(meta).__name__ == "PathMarker" for meta in annotation.__metadata__)
        return "path" if marked else _type(args[0])
    if origin is typing.Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type(a) for a in args)
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"mapping of {_type(args[0])} to {_type(args[1])}"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "" if isinstance(value, BaseModel) else f"`{json.dumps(value, ensure_ascii=False)}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{json.dumps(field.default, ensure_ascii=False)}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    out = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested = _models(field.annotation)
        if nested:
            sub = f"{key}[]." if typing.get_origin(field.annotation) is list else f"{key}."
            if len(nested) > 1:  # a union on `type` (eval tasks): each variant's own keys
                for variant in nested:
                    kind = typing.get_args(variant.model_fields["type"].annotation)[0]
                    out += [(f"{k} ({kind})", t, d, m) for k, t, d, m in rows(variant, sub)]
            else:
                out += rows(nested[0], sub)
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        kind = _type(field.annotation)
        if any(type(meta).__name__ == "PathMarker" for meta in field.metadata):  # pydantic moved it off the type
            kind = kind.replace("str", "path", 1)
        out.append((f"`{key}`", kind, _default(field).replace("|", "\\|"), description))
    return out


def render() -> str:
    parts = [HEADER]
    for stage, model in STAGE_CONFIGS.items():
        parts.append(f"\n## `bailong {stage}`\n\n| key | type | default | meaning |\n|---|---|---|---|\n")
        parts += [f"| {k} | {t} | {d} | {m} |\n" for k, t, d, m in rows(model)]
    return "".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/configuration.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.is_file() else ""
        if current != text:
            print(f"{OUT} is out of date: run python scripts/config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
