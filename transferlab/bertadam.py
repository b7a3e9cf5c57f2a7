"""BERTAdam: Adam without bias correction, as the original BERT code fine-tuned with, and why it matters.

Adam keeps running means of the gradient (``m``) and of its square (``v``), both started at zero. Early on they are
biased towards zero, so Adam divides them by ``1 - beta1**t`` and ``1 - beta2**t``. The original BERT optimiser
(``BertAdam``) skipped that step. Its update is therefore ``(1 - beta1**t) / sqrt(1 - beta2**t)`` times Adam's
(:func:`bias_correction_factor`): about 3x at step 1 and 6.5x at step 10 with the usual betas, back to 1 only after
thousands of steps. A short fine-tuning run on a small dataset lives entirely in that inflated regime, which is what
Mosbach et al. (ICLR 2021) and Zhang et al. (ICLR 2021) found behind many failed runs.

:class:`BertAdam` is that optimiser, a few lines; ``bias_correction=True`` turns it into AdamW (the tests check it
matches ``torch.optim.AdamW`` step for step).
"""

from __future__ import annotations

import math

import torch

from ._validate import as_float, as_int

__all__ = ["BertAdam", "bias_correction_factor"]


def bias_correction_factor(step: int, betas: tuple[float, float] = (0.9, 0.999)) -> float:
    """How much larger an update without bias correction is than Adam's at ``step`` (1-based).

    Examples
    --------
    >>> [round(bias_correction_factor(t), 2) for t in (1, 10, 10000)]
    [3.16, 6.53, 1.0]
    """
    t = as_int("step", step, min=1)
    b1, b2 = (as_float("beta", b, min=0.0, max=1.0, max_open=True) for b in betas)
    # uncorrected m / sqrt(v) over corrected (m / (1 - b1^t)) / sqrt(v / (1 - b2^t))
    return (1 - b1 ** t) / math.sqrt(1 - b2 ** t)


class BertAdam(torch.optim.Optimizer):
    """Adam with decoupled weight decay and, by default, **no** bias correction (the original BERT optimiser).

    Parameters
    ----------
    lr, betas, eps, weight_decay : as in ``torch.optim.AdamW`` (BERT used ``eps=1e-6``, ``weight_decay=0.01``).
    bias_correction : False is BERTAdam; True is AdamW.

    Examples
    --------
    >>> p = torch.nn.Parameter(torch.ones(2)); opt = BertAdam([p], lr=0.1)
    >>> p.grad = torch.ones(2); opt.step(); round(1 - p[0].item(), 4)  # lr * 0.1 / sqrt(0.001): 3.16x Adam's lr
    0.3162
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-6, weight_decay: float = 0.0,
                 bias_correction: bool = False):
        lr = as_float("lr", lr, min=0.0)
        betas = tuple(as_float("beta", b, min=0.0, max=1.0, max_open=True) for b in betas)
        eps, weight_decay = as_float("eps", eps, min=0.0), as_float("weight_decay", weight_decay, min=0.0)
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bool(bias_correction)))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"], state["m"], state["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                state["step"] += 1
                t, m, v = state["step"], state["m"], state["v"]
                p.mul_(1 - group["lr"] * group["weight_decay"])           # decoupled weight decay
                m.mul_(b1).add_(p.grad, alpha=1 - b1)                      # running mean of the gradient
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)          # ... and of its square
                if group["bias_correction"]:                               # Adam: undo the bias towards 0
                    denom = (v / (1 - b2 ** t)).sqrt().add_(group["eps"])
                    p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1 ** t))
                else:                                                      # BERTAdam: use m and v as they are
                    p.addcdiv_(m, v.sqrt().add_(group["eps"]), value=-group["lr"])
        return loss
