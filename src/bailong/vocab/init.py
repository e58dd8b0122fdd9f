"""Initializing the embedding rows of tokens added by extend-vocab.

zip-tie ties a new token to the base pieces that its text is made of (for a Traditional Chinese character in Llama 2,
mostly UTF-8 byte-fallback tokens): the base model has learned to read and write the character through those pieces.
A new row is a weighted mean of its pieces' rows, piece i weighted by `new_rows.decay`**i (0.8 by default, chosen
by `scripts/ablate_init.py`; 1 is the plain mean): the input row from the pieces' input rows, and for an untied base
the LM head row from the pieces' LM head rows (or, with `output_row: first`, the row of the piece emitted first).
A tied base has one row that both reads and writes.
With `new_rows.norm: script` (NVIDIA's norm correction) each combined row is then rescaled to the median norm of the
base's rows for tokens of the same script: a mean of pieces is shorter than a typical row (the pieces point different
ways), which the model reads as a weak, vague token.
Old rows are never touched. All methods are one sparse matrix product over all new tokens (no Python loop per row).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import torch

from bailong.data.scripts import script_of

if TYPE_CHECKING:
    from bailong.config import NewRowsConfig

CHUNK = 4096  # new rows computed per sparse product, to bound the temporary memory


def piece_weights(lengths: list[int], decay: float) -> list[list[float]]:
    """Weights over each new token's base pieces: piece i gets decay**i, normalized (1: the mean; 0: the first)."""
    out = []
    for n in lengths:
        w = [decay**i for i in range(n)]
        total = sum(w)
        out.append([x / total for x in w])
    return out


def _combine(matrix: torch.Tensor, new_ids: list[int], pieces: list[list[int]], decay: float) -> None:
    """matrix[new_ids[k]] = sum_i w_ki * matrix[pieces[k][i]], computed chunk by chunk as sparse products."""
    base_rows = matrix[: min(new_ids)].float()
    weights = piece_weights([len(p) for p in pieces], decay)
    for start in range(0, len(new_ids), CHUNK):
        stop = min(start + CHUNK, len(new_ids))
        rows, cols, vals = [], [], []
        for k in range(start, stop):
            rows += [k - start] * len(pieces[k])
            cols += pieces[k]
            vals += weights[k]
        index = torch.tensor([rows, cols])
        shape = (stop - start, base_rows.shape[0])
        sparse = torch.sparse_coo_tensor(index, torch.tensor(vals, dtype=torch.float32), shape, check_invariants=False)
        matrix[new_ids[start:stop]] = torch.sparse.mm(sparse, base_rows).to(matrix.dtype)


@torch.no_grad()
def initialize_new_rows(
    embed: torch.Tensor,
    head: torch.Tensor | None,
    new_ids: list[int],
    pieces: list[list[int]],
    cfg: NewRowsConfig,
    init_std: float = 0.02,
    texts: tuple[list[str], list[str]] | None = None,
) -> None:
    """Fills rows `new_ids` of the input embedding `embed` and, for an untied base, of the LM head `head`, in place.

    `pieces[k]` are the base token ids that the text of token `new_ids[k]` encoded to before the extension.
    `texts` (the decoded text of every base token, and of every new token) is needed by `norm: script`.
    """
    if not new_ids:
        return
    if min(new_ids) < max(max(p) for p in pieces):
        raise ValueError("every base piece must come before the first new token")
    generator = torch.Generator().manual_seed(cfg.seed)
    matrices = [embed] if head is None else [embed, head]
    for which, matrix in enumerate(matrices):
        if cfg.init in ("random", "mean"):
            _noise_rows(matrix, new_ids, cfg.init, init_std, generator)
        elif cfg.init == "subword-mean":
            _combine(matrix, new_ids, pieces, decay=1.0)
        elif which == 1 and cfg.output_row == "first":  # zip-tie, untied LM head: the piece emitted first
            _combine(matrix, new_ids, pieces, decay=0.0)
        else:  # zip-tie: the input row; the LM head row of an untied base; the one row of a tied base
            _combine(matrix, new_ids, pieces, decay=cfg.decay)
        if cfg.norm == "script" and cfg.init in ("zip-tie", "subword-mean"):
            if texts is None:
                raise ValueError("norm: script needs the texts of the base and new tokens")
            target = script_norms(matrix, *texts)
            rows = matrix[new_ids].float()
            matrix[new_ids] = (rows * (target / rows.norm(dim=1).clamp_min(1e-12))[:, None]).to(matrix.dtype)


def text_script(text: str) -> str | None:
    """The most common script among the letters of `text` (None without letters)."""
    counts = Counter(s for s in map(script_of, text) if s is not None)
    return counts.most_common(1)[0][0] if counts else None


def script_norms(matrix: torch.Tensor, base_texts: list[str], new_texts: list[str]) -> torch.Tensor:
    """For each new token, the median norm of the base rows whose tokens are in its script (all base rows' median
    when the base has no token of that script)."""
    norms = matrix[: len(base_texts)].float().norm(dim=1)
    by_script: dict[str, list[int]] = {}
    for i, text in enumerate(base_texts):
        if (script := text_script(text)) is not None:
            by_script.setdefault(script, []).append(i)
    median = {s: norms[ids].median().item() for s, ids in by_script.items()}
    overall = norms.median().item()
    return torch.tensor([median.get(text_script(t), overall) for t in new_texts])


def _noise_rows(matrix: torch.Tensor, new_ids: list[int], init: str, init_std: float, generator) -> None:
    """`random`: normal(0, init_std). `mean` (LLaMA-Factory's default): the mean of all old rows plus small noise."""
    dim = matrix.shape[1]
    mean = matrix[: min(new_ids)].float().mean(dim=0) if init == "mean" else None
    for start in range(0, len(new_ids), CHUNK):
        chunk = new_ids[start : start + CHUNK]
        noise = torch.randn(len(chunk), dim, generator=generator)
        rows = noise * init_std if mean is None else mean + noise * (mean.norm() * 0.01 / dim**0.5)
        matrix[chunk] = rows.to(matrix.dtype)
