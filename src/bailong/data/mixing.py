"""The one way several training sources are combined: by share, in memory or streamed."""

from __future__ import annotations

import math


def mix(parts: list, weights: list[float] | None, seed: int, streaming: bool = False):
    """One shuffled dataset from `parts`; with `weights`, each part makes up its share of the result.

    In memory, one epoch is one pass over the first part, the others repeated or cut so that each gets its share; a
    stream interleaves the parts with those probabilities until every part is used up.
    """
    import datasets

    shares = [w / sum(weights) for w in weights] if weights else None
    if streaming:
        mixed = (
            parts[0]
            if len(parts) == 1
            else datasets.interleave_datasets(parts, probabilities=shares, seed=seed, stopping_strategy="all_exhausted")
        )
        return mixed.shuffle(seed=seed, buffer_size=1000)
    if shares is None or len(parts) == 1:
        return datasets.concatenate_datasets(parts).shuffle(seed=seed)
    total = len(parts[0]) / shares[0] if shares[0] > 0 else sum(len(p) for p in parts)
    chosen = []
    for rows, share in zip(parts, shares):
        wanted = round(total * share)
        if wanted == 0:
            continue
        copies = datasets.concatenate_datasets([rows] * math.ceil(wanted / len(rows)))
        chosen.append(copies.shuffle(seed=seed).select(range(wanted)) if wanted < len(copies) else copies)
    return datasets.concatenate_datasets(chosen).shuffle(seed=seed)
