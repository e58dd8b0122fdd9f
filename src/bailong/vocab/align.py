"""align: learns the new embedding rows against the base model before any pre-training (Token Distillation's idea).

The teacher is the base model reading a text block through the base tokenizer; the student is the extended model
reading the same block through the extended tokenizer. Where both tokenizations end a token at the same character,
both models have read the same prefix, so their hidden states there should agree: the input rows of the new tokens
learn to make them agree (squared error relative to the teacher's squared norm, per matched layer), weighted by
`align.hidden_weight`. Output rows learn by next-token loss on the extended tokenization (cross-entropy over the whole
vocabulary, on hidden states taken as given), weighted by `align.output_weight`. A tied base has one row per token
that gets both gradients. The defaults (next-token loss only: no teacher, no backward pass) lowered held-out bits per
character most per second of align (README, "Measured: align").

The teacher needs no model of its own: the base text indexes only old rows, and every weight but the new rows is
frozen, so the extended model reading base ids is the base model. Only a small delta tensor per matrix trains; it is
added to the new rows' init at the end, so every other weight stays bit for bit what it was.
"""

from __future__ import annotations

import copy
import random
import time
import zlib
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from bailong.config import AlignConfig
from bailong.console import is_main_process
from bailong.errors import BailongError

SHUFFLE_BUFFER = 512  # text blocks mixed before batching, so a batch is not one document's blocks
LIKELY_MASS = 0.1  # a new row whose probability summed over a batch's positions reaches this is moved by the step
CURVE_POINTS = 200  # at most this many points of the loss curve are recorded


def text_blocks(documents: Iterable[str], base_tok, block_size: int) -> Iterator[str]:
    """Cuts each document into blocks of at most about `block_size` base tokens, at token ends."""
    for doc in documents:
        offsets = base_tok(doc, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        start = 0
        for last in range(block_size - 1, len(offsets) + block_size - 1, block_size):
            cut = offsets[min(last, len(offsets) - 1)][1]
            if cut > start and doc[start:cut].strip():
                yield doc[start:cut]
            start = max(start, cut)


def token_ends(tokenizer, text: str) -> tuple[list[int], list[int]]:
    """The ids of `text` and, for each token, the character its prefix ends at, or -1 where the next token starts
    before that character (bytes of one character split over tokens: byte fallback or byte-level BPE)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    ends = []
    for k, (_, end) in enumerate(offsets):
        complete = k + 1 == len(offsets) or offsets[k + 1][0] >= end
        ends.append(end if complete and end > 0 else -1)
    return list(enc["input_ids"]), ends


def matched_positions(base_ends: list[int], new_ends: list[int]) -> tuple[list[int], list[int]]:
    """Pairs of (teacher, student) token positions whose prefixes end at the same character (the last token of
    each tokenization that ends there)."""
    teacher = {end: i for i, end in enumerate(base_ends) if end >= 0}
    student = {end: i for i, end in enumerate(new_ends) if end >= 0}
    shared = sorted(teacher.keys() & student.keys())
    return [teacher[e] for e in shared], [student[e] for e in shared]


class _Batch:
    """Padded teacher and student ids of a few text blocks, with the matched positions."""

    def __init__(self, blocks: list[str], base_tok, new_tok, start_id: int, first_new: int, device):
        pairs = [(token_ends(base_tok, b), token_ends(new_tok, b)) for b in blocks]
        self.teacher_ids, self.teacher_mask = _pad([[start_id] + t[0] for t, _ in pairs], device)
        self.student_ids, self.student_mask = _pad([[start_id] + s[0] for _, s in pairs], device)
        rows, t_pos, s_pos = [], [], []
        for row, ((_, t_ends), (s_ids, s_ends)) in enumerate(pairs):
            seen_new = [False]  # a student prefix with no new token equals the teacher's: nothing to learn there
            for token in s_ids:
                seen_new.append(seen_new[-1] or token >= first_new)
            t, s = matched_positions(t_ends, s_ends)
            keep = [(a + 1, b + 1) for a, b in zip(t, s) if seen_new[b + 1]]  # +1: the start token
            rows += [row] * len(keep)
            t_pos += [a for a, _ in keep]
            s_pos += [b for _, b in keep]
        self.rows = torch.tensor(rows, dtype=torch.long, device=device)
        self.teacher_pos = torch.tensor(t_pos, dtype=torch.long, device=device)
        self.student_pos = torch.tensor(s_pos, dtype=torch.long, device=device)
        self.new_tokens = int((self.student_ids >= first_new).sum())
        self.present = torch.unique(self.student_ids[self.student_ids >= first_new]) - first_new  # rows this batch uses
        self.teacher_tokens, self.student_tokens = int(self.teacher_mask.sum()), int(self.student_mask.sum())


def _pad(sequences: list[list[int]], device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, sequences))
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def _layer_indices(layers, num_layers: int) -> list[int]:
    if layers == "last":
        return [num_layers]
    if layers == "all":
        return list(range(1, num_layers + 1))
    out = []
    for layer in layers:
        index = layer + num_layers + 1 if layer < 0 else layer
        if not 1 <= index <= num_layers:
            raise BailongError(
                f"align.layers: {layer} is not a layer of this model; it has layers 1 to {num_layers} (or -1 to "
                f"-{num_layers}); fix align.layers"
            )
        out.append(index)
    return sorted(set(out))


def _blocks_forever(documents: Callable[[], Iterable[str]], base_tok, cfg: AlignConfig) -> Iterator[str]:
    """Streams the corpus (again and again), keeping `corpus_share` of the documents, in a shuffled buffer."""
    rng = random.Random(cfg.seed)
    buffer: list[str] = []
    while True:
        kept = (d for d in documents() if zlib.crc32(f"{cfg.seed}:{d}".encode()) < cfg.corpus_share * 2**32)
        empty = True
        for block in text_blocks(kept, base_tok, cfg.block_size):
            empty = False
            buffer.append(block)
            if len(buffer) >= SHUFFLE_BUFFER:
                yield buffer.pop(rng.randrange(len(buffer)))
        if empty:
            raise ValueError("align: no corpus text to align on (raise align.corpus_share or add text)")
        rng.shuffle(buffer)
        while len(buffer) > SHUFFLE_BUFFER // 2:
            yield buffer.pop()


class _Aligner:
    """The frozen model in float32 (on the GPU if there is one), the trainable deltas of the new rows, the losses."""

    def __init__(self, model, base_tok, new_tok, new_ids: list[int], cfg: AlignConfig):
        self.model, self.base_tok, self.new_tok, self.cfg = model, base_tok, new_tok, cfg
        self.embed = model.get_input_embeddings().weight
        self.head = model.get_output_embeddings().weight
        self.tied = self.head is self.embed
        self.first_new = new_ids[0]
        self.device = torch.device("cuda") if torch.cuda.is_available() else self.embed.device
        self.dtype, self.home = self.embed.dtype, self.embed.device
        self.compute = torch.float32 if self.device.type == "cpu" else self.dtype  # half precision is slow on CPUs
        self.index = torch.tensor(new_ids, device=self.device)
        self.layers = _layer_indices(cfg.layers, model.config.num_hidden_layers)
        bos = base_tok.bos_token_id
        self.start_id = bos if bos is not None else base_tok.eos_token_id
        # the deltas are in units of the old rows' root-mean-square coordinate, so one learning rate fits every model
        self.scale_in = self.embed[: self.first_new].float().pow(2).mean().sqrt().item()
        self.scale_out = self.head[: self.first_new].float().pow(2).mean().sqrt().item()
        dim = self.embed.shape[1]
        self.delta_in = torch.zeros(len(new_ids), dim, device=self.device, requires_grad=True)
        self.delta_out = (
            self.delta_in if self.tied else torch.zeros(len(new_ids), dim, device=self.device, requires_grad=True)
        )

    def __enter__(self) -> _Aligner:
        self.requires_grad = {name: p.requires_grad for name, p in self.model.named_parameters()}
        self.was_training = self.model.training
        self.model.to(device=self.device, dtype=self.compute)  # float32 holds bf16 and fp16 exactly: the way back is
        for p in self.model.parameters():  # exact
            p.requires_grad_(False)
        self.model.eval()
        return self

    def __exit__(self, *exc) -> None:
        self.model.to(device=self.home, dtype=self.dtype)
        self.model.train(self.was_training)
        for name, p in self.model.named_parameters():
            p.requires_grad_(self.requires_grad[name])

    def batch(self, blocks: list[str]) -> _Batch:
        return _Batch(blocks, self.base_tok, self.new_tok, self.start_id, self.first_new, self.device)

    def losses(self, batch: _Batch, match_hidden: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(hidden-state loss, next-token loss, new rows the predictions favour) of the student with the new rows at
        init + delta. Without `match_hidden` the teacher is not run and the student runs forward only (the next-token
        loss takes the hidden states as given), so a block costs about a third; the hidden-state loss is then 0."""
        decoder = self.model.base_model
        targets = []
        if match_hidden:
            with torch.no_grad():
                teacher = decoder(
                    input_ids=batch.teacher_ids, attention_mask=batch.teacher_mask, output_hidden_states=True
                )
                targets = [_states(teacher, layer)[batch.rows, batch.teacher_pos] for layer in self.layers]
        inputs = F.embedding(batch.student_ids, self.embed)
        is_new = batch.student_ids >= self.first_new
        delta = (self.delta_in[batch.student_ids[is_new] - self.first_new] * self.scale_in).to(self.compute)
        inputs = inputs + torch.zeros_like(inputs).index_put((is_new,), delta)
        with torch.set_grad_enabled(match_hidden):
            student = decoder(inputs_embeds=inputs, attention_mask=batch.student_mask, output_hidden_states=True)
        hidden = torch.zeros((), device=self.device)
        if match_hidden and len(batch.rows):
            for layer, target in zip(self.layers, targets):
                got = _states(student, layer)[batch.rows, batch.student_pos]
                hidden = hidden + ((got - target) ** 2).sum(-1).mean() / (target**2).sum(-1).mean()
            hidden = hidden / len(self.layers)
        return hidden, *self._next_token_loss(student.last_hidden_state.detach(), batch)

    def _next_token_loss(self, hidden: torch.Tensor, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the next extended token over the whole vocabulary, the new head rows at init + delta; and
        the new rows whose probability summed over the batch's positions reaches LIKELY_MASS: a row predicted where
        it should not be must learn to yield, so the optimizer moves it too."""
        mask = batch.student_mask[:, 1:].bool()
        states = hidden[:, :-1][mask]
        targets = batch.student_ids[:, 1:][mask]
        new_rows = self.head[self.index] + (self.delta_out * self.scale_out).to(self.compute)
        logits = (states @ self.head.T).index_copy(1, self.index, states @ new_rows.T)
        log_probs = logits.float().log_softmax(-1)
        likely = (log_probs[:, self.index].detach().exp().sum(0) >= LIKELY_MASS).nonzero()[:, 0]
        return F.nll_loss(log_probs, targets), likely

    @torch.no_grad()
    def commit(self) -> None:
        """Adds the deltas to the new rows; no other element of any weight is written (of a copy, for a snapshot)."""
        self.embed.data[self.index] = self.embed.data[self.index] + (self.delta_in * self.scale_in).to(self.compute)
        if not self.tied:
            new_rows = self.head.data[self.index] + (self.delta_out * self.scale_out).to(self.compute)
            self.head.data[self.index] = new_rows


class _LazyAdam:
    """Adam that moves only the rows a batch uses: reads, or predicts with summed probability >= LIKELY_MASS. Plain
    Adam would move every new row every step: the softmax gives each absent row a tiny gradient (push its logit
    down), which Adam's normalization turns into a full step, and its momentum keeps moving rows long after their
    last use; rare tokens would drift away."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params, self.lr, self.betas, self.eps = params, lr, betas, eps
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = [torch.zeros(p.shape[0], device=p.device) for p in params]  # steps taken, per row

    @torch.no_grad()
    def step(self, rows: torch.Tensor) -> None:
        rows = rows.to(self.params[0].device)
        b1, b2 = self.betas
        for p, m, v, t in zip(self.params, self.m, self.v, self.t):
            if p.grad is None:  # a batch whose blocks hold no new token leaves these rows out of the loss
                continue
            g = p.grad[rows]
            m[rows] = b1 * m[rows] + (1 - b1) * g
            v[rows] = b2 * v[rows] + (1 - b2) * g * g
            t[rows] += 1
            m_hat = m[rows] / (1 - b1 ** t[rows])[:, None]
            v_hat = v[rows] / (1 - b2 ** t[rows])[:, None]
            p[rows] -= self.lr * m_hat / (v_hat.sqrt() + self.eps)
            p.grad = None


def _snapshot(aligner: _Aligner):
    copy_ = copy.deepcopy(aligner.model)
    view = copy.copy(aligner)
    view.model = copy_
    view.embed, view.head = copy_.get_input_embeddings().weight, copy_.get_output_embeddings().weight
    view.commit()
    return copy_


def align_new_rows(
    model,
    base_tok,
    new_tok,
    new_ids: list[int],
    documents: Callable[[], Iterable[str]],
    cfg: AlignConfig,
    snapshots: Callable[[int, object], None] | None = None,
) -> dict:
    """Trains the rows `new_ids` of `model` (already initialized) in place; returns what to record about the run.

    `snapshots(step, model_copy)`, if given, sees a copy of the model with the rows as they are after each step that
    is a multiple of 10 (the ablation's curve); its time is not counted in align's seconds.
    """
    from tqdm.auto import tqdm

    start_time = time.perf_counter()
    torch.manual_seed(cfg.seed)
    blocks = _blocks_forever(documents, base_tok, cfg)
    curve, running, tokens_seen, teacher_tokens, student_tokens, paused = [], None, 0, 0, 0, 0.0
    every = max(1, cfg.steps // CURVE_POINTS)
    match_hidden = cfg.hidden_weight > 0  # 0: the teacher is not run, the student runs forward only
    with _Aligner(model, base_tok, new_tok, new_ids, cfg) as aligner:
        params = [aligner.delta_in] if aligner.tied else [aligner.delta_in, aligner.delta_out]
        optimizer = _LazyAdam(params, cfg.learning_rate)
        bar = tqdm(range(1, cfg.steps + 1), desc="align", unit="step", disable=not is_main_process())
        for step in bar:
            batch = aligner.batch([next(blocks) for _ in range(cfg.batch_size)])
            tokens_seen += batch.new_tokens
            teacher_tokens += batch.teacher_tokens if match_hidden else 0
            student_tokens += batch.student_tokens
            hidden, next_token, likely = aligner.losses(batch, match_hidden)
            loss = cfg.hidden_weight * hidden + cfg.output_weight * next_token
            loss.backward()
            optimizer.lr = cfg.learning_rate * (1 - (step - 1) / cfg.steps if cfg.decay else 1.0)
            optimizer.step(torch.unique(torch.cat([batch.present, likely])))
            value = loss.item()
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.set_postfix(loss=f"{running:.4f}", refresh=False)
            if step % every == 0 or step in (1, cfg.steps):
                point = {"step": step, "loss": value, "hidden": hidden.item(), "next_token": next_token.item()}
                curve.append({k: round(v, 5) for k, v in point.items()})
            if snapshots is not None and step % 10 == 0:
                paused_at = time.perf_counter()
                snapshots(step, _snapshot(aligner))
                paused += time.perf_counter() - paused_at
        aligner.commit()
        layers, tied = aligner.layers, aligner.tied
    return {
        **cfg.model_dump(),
        "layers_matched": layers,
        "tied": tied,
        "new_token_occurrences": tokens_seen,
        "teacher_tokens": teacher_tokens,  # read forward only
        "student_tokens": student_tokens,  # read forward, and backward to the inputs if hidden_weight > 0
        "seconds": round(time.perf_counter() - start_time - paused, 2),
        "loss_curve": curve,
    }


@torch.no_grad()
def held_out_losses(model, base_tok, new_tok, new_ids: list[int], texts: list[str], cfg: AlignConfig) -> dict:
    """align's two losses of `model` as it is on the blocks of `texts`, both whatever the weights (for tests)."""
    blocks = list(text_blocks(texts, base_tok, cfg.block_size))
    hidden = next_token = 0.0
    with _Aligner(model, base_tok, new_tok, new_ids, cfg) as aligner:
        for start in range(0, len(blocks), cfg.batch_size):
            batch = aligner.batch(blocks[start : start + cfg.batch_size])
            h, n, _ = aligner.losses(batch, match_hidden=True)
            hidden, next_token = hidden + h.item(), next_token + n.item()
    batches = max(1, -(-len(blocks) // cfg.batch_size))
    return {"hidden": hidden / batches, "next_token": next_token / batches}


def _states(outputs, layer: int) -> torch.Tensor:
    """Hidden states after `layer`; the last layer's is the final normalized state that the LM head reads."""
    if layer == len(outputs.hidden_states) - 1:
        return outputs.last_hidden_state
    return outputs.hidden_states[layer]
