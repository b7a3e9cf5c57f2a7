"""Self-supervised pretraining: labels made from the text itself.

Three ways to turn unlabelled text into a prediction task, each written out small:

- **masked language model** (BERT): hide 15% of the tokens (80% become ``[MASK]``, 10% a random token, 10% stay)
  and predict them from both sides: a cloze test (:func:`mask_tokens`);
- **causal language model** (GPT): predict every next token from the ones before it (the labels are the inputs;
  the model shifts them);
- **CBOW** (word2vec): predict a word from the mean of its neighbours' embeddings (:func:`cbow_examples`).

:func:`pretrain` runs either language model over a tokenized corpus with AdamW, linear warm-up and decay, records
the loss curve, and keeps copies of the weights at the steps asked for (the lesson looks at what the features
transfer before and after the loss leaves its plateau). :func:`context_free_entropy` gives the plateau's level:
the loss of a model that knows only which words are frequent at each position.
"""

from __future__ import annotations

import collections
import math

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import as_choice, as_float, as_int, as_seed
from .device import resolve_device, seeded

__all__ = ["mask_tokens", "pretrain", "cbow_examples", "pretrain_cbow", "lm_accuracy", "context_free_entropy",
           "linear_warmup"]


def mask_tokens(input_ids: torch.Tensor, *, mask_id: int, vocab_size: int, special_ids, prob: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking: returns ``(inputs, labels)``; labels are -100 except at the chosen positions.

    Examples
    --------
    >>> ids = torch.tensor([[2, 7, 8, 9, 3]])
    >>> x, y = mask_tokens(ids, mask_id=4, vocab_size=10, special_ids=[0, 2, 3], prob=1.0,
    ...                    generator=torch.Generator().manual_seed(0))
    >>> y.tolist()  # every non-special token is a target; [CLS]/[SEP] never are
    [[-100, 7, 8, 9, -100]]
    """
    prob = as_float("prob", prob, min=0.0, max=1.0)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    x = input_ids.clone()
    candidates = ~torch.isin(x, torch.as_tensor(list(special_ids), dtype=x.dtype))
    chosen = (torch.rand(x.shape, generator=gen) < prob) & candidates
    labels = torch.where(chosen, x, torch.full_like(x, -100))
    r = torch.rand(x.shape, generator=gen)
    x[chosen & (r < 0.8)] = mask_id
    rand = chosen & (r >= 0.8) & (r < 0.9)
    x[rand] = torch.randint(0, vocab_size, (int(rand.sum()),), generator=gen)
    return x, labels


def linear_warmup(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.1):
    """BERT's schedule: the learning rate rises linearly over ``warmup`` of the steps, then falls linearly to 0."""
    total = as_int("total_steps", total_steps, min=1)
    warm = max(1, int(round(as_float("warmup", warmup, min=0.0, max=1.0) * total)))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _batches(n: int, batch_size: int, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield order[i: i + batch_size]


def pretrain(model: nn.Module, objective: str, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
             epochs: int, lr: float = 1e-3, batch_size: int = 128, warmup: float = 0.06, weight_decay: float = 0.01,
             mask_id: int | None = None, special_ids=(), seed: int = 0, device=None, log_every: int = 20,
             checkpoints=(), progress: bool = True, desc: str = "pretrain",
             mask_prob: float = 0.15) -> tuple[list[dict], dict]:
    """Pretrain a Hugging Face LM head model with ``objective`` "mlm" or "clm"; returns ``(curve, states)``.

    ``curve`` has one row per ``log_every`` steps (``step``, ``epoch``, ``loss``: the mean over those steps);
    ``states`` maps each step of ``checkpoints`` (and the last step) to a CPU copy of the state dict. The caller's
    random state is untouched (masking and data order use private generators).
    """
    objective = as_choice("objective", objective, ("mlm", "clm"))
    epochs, batch_size = as_int("epochs", epochs, min=1), as_int("batch_size", batch_size, min=1)
    log_every, seed = as_int("log_every", log_every, min=1), as_seed(seed)
    if objective == "mlm" and mask_id is None:
        raise ValueError("objective='mlm' needs mask_id (the tokenizer's [MASK] id)")
    device = resolve_device(device)
    n = len(input_ids)
    total = epochs * math.ceil(n / batch_size)
    keep = {as_int("checkpoint", c, min=0) for c in checkpoints}
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=as_float("lr", lr, min=0.0, min_open=True),
                            weight_decay=weight_decay)
    sched = linear_warmup(opt, total, warmup)
    curve, states, window, step = [], {}, [], 0
    if 0 in keep:
        states[0] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    with seeded(seed, device):
        for _ in range(epochs):
            for idx in _batches(n, batch_size, gen):
                am = attention_mask[idx]
                width = int(am.sum(1).max())
                x, am = input_ids[idx, :width], am[:, :width]
                if objective == "mlm":
                    x, labels = mask_tokens(x, mask_id=mask_id, vocab_size=model.config.vocab_size,
                                            special_ids=special_ids, prob=mask_prob, generator=gen)
                else:
                    labels = x.masked_fill(am == 0, -100)
                out = model(input_ids=x.to(device), attention_mask=am.to(device), labels=labels.to(device))
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                sched.step()
                step += 1
                window.append(out.loss.item())
                bar.update(1)
                if step % log_every == 0 or step == total:
                    curve.append(dict(step=step, epoch=step / math.ceil(n / batch_size),
                                      loss=sum(window) / len(window)))
                    window = []
                if step in keep or step == total:
                    states[step] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    bar.close()
    model.eval()
    return curve, states


@torch.no_grad()
def lm_accuracy(model: nn.Module, objective: str, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                mask_id: int | None = None, special_ids=(), seed: int = 0, batch_size: int = 512) -> dict:
    """Masked-token (mlm) or next-token (clm) accuracy and mean loss on held-out text."""
    objective = as_choice("objective", objective, ("mlm", "clm"))
    gen = torch.Generator().manual_seed(as_seed(seed))
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    correct = count = 0
    loss_sum = 0.0
    for i in range(0, len(input_ids), batch_size):
        x, am = input_ids[i: i + batch_size], attention_mask[i: i + batch_size]
        if objective == "mlm":
            x, labels = mask_tokens(x, mask_id=mask_id, vocab_size=model.config.vocab_size, special_ids=special_ids,
                                    generator=gen)
        else:
            labels = x.masked_fill(am == 0, -100)
        logits = model(input_ids=x.to(device), attention_mask=am.to(device)).logits.float().cpu()
        if objective == "clm":
            logits, labels = logits[:, :-1], labels[:, 1:]
        sel = labels != -100
        loss_sum += nn.functional.cross_entropy(logits[sel], labels[sel], reduction="sum").item()
        correct += int((logits[sel].argmax(-1) == labels[sel]).sum())
        count += int(sel.sum())
    model.train(was)
    return dict(acc=correct / max(count, 1), loss=loss_sum / max(count, 1), n=count)


def cbow_examples(input_ids: torch.Tensor, attention_mask: torch.Tensor, *, window: int = 2, pad_id: int = 0,
                  special_ids=()) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (context, centre) pair of a tokenized corpus: ``[M, 2 * window]`` context ids and ``[M]`` centres.

    Context positions outside the sentence (or on special tokens) hold ``pad_id``.

    Examples
    --------
    >>> ctx, mid = cbow_examples(torch.tensor([[5, 6, 7]]), torch.tensor([[1, 1, 1]]), window=1)
    >>> ctx.tolist(), mid.tolist()
    ([[0, 6], [5, 7], [6, 0]], [5, 6, 7])
    """
    window = as_int("window", window, min=1)
    ids = input_ids.masked_fill(attention_mask == 0, pad_id)
    if len(special_ids):
        ids = ids.masked_fill(torch.isin(ids, torch.as_tensor(list(special_ids), dtype=ids.dtype)), pad_id)
    padded = nn.functional.pad(ids, (window, window), value=pad_id)
    offsets = [o for o in range(-window, window + 1) if o != 0]
    T = ids.shape[1]
    ctx = torch.stack([padded[:, window + o: window + o + T] for o in offsets], dim=-1)  # [N, T, 2w]
    valid = ids != pad_id
    return ctx[valid], ids[valid]


def pretrain_cbow(model: nn.Module, context: torch.Tensor, centre: torch.Tensor, *, epochs: int = 2,
                  lr: float = 3e-3, batch_size: int = 512, seed: int = 0, device=None, progress: bool = True):
    """Train a :class:`~transferlab.text_models.CBOW` model; returns its loss curve (one row per epoch)."""
    epochs, seed = as_int("epochs", epochs, min=1), as_seed(seed)
    device = resolve_device(device)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=as_float("lr", lr, min=0.0, min_open=True))
    curve = []
    with seeded(seed, device):
        for epoch in tqdm(range(epochs), desc="pretrain cbow", disable=not progress, leave=False):
            total = count = 0.0
            for idx in _batches(len(centre), batch_size, gen):
                loss = nn.functional.cross_entropy(model(context[idx].to(device)), centre[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(idx), count + len(idx)
            curve.append(dict(step=epoch + 1, epoch=epoch + 1, loss=total / count))
    model.eval()
    return curve


def context_free_entropy(texts) -> dict:
    """Entropy (nats) of a word given nothing (``unigram``) and given only its position (``positional``).

    A language model whose loss sits near these levels predicts from word frequencies alone, without using the
    context: the plateau of the masked-LM curve.

    Examples
    --------
    >>> h = context_free_entropy(["a b", "a c"]); round(h["unigram"], 3), round(h["positional"], 3)
    (1.04, 0.347)
    """
    words = collections.Counter()
    at = collections.defaultdict(collections.Counter)
    for text in texts:
        ws = text.split()
        words.update(ws)
        for i, w in enumerate(ws):
            at[(len(ws), i)][w] += 1
    n = sum(words.values())
    if n == 0:
        raise ValueError("context_free_entropy() got no words")

    def h(counter):
        m = sum(counter.values())
        return -sum(v / m * math.log(v / m) for v in counter.values())

    return dict(unigram=h(words), positional=sum(sum(c.values()) / n * h(c) for c in at.values()))
