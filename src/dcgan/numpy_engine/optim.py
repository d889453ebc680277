"""Adam over named (parameter, gradient) pairs, step for step the arithmetic of torch.optim.Adam.

State is named like the checkpoint wants it: `state[name]["exp_avg" | "exp_avg_sq"]`, one shared
step count (torch keeps one per parameter, always equal when every parameter steps together).
"""

from __future__ import annotations

import math

import numpy as np

from .backend import array_module


class Adam:
    """Adam without weight decay or amsgrad, the options DCGAN training uses.

    `params` maps names to arrays that `step` updates in place; `step(grads)` takes the same names.
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        eps: float = 1e-8,
    ):
        self.params = params
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.step_count = 0
        self.state = {name: {"exp_avg": p * 0, "exp_avg_sq": p * 0} for name, p in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.step_count += 1
        bias_correction1 = 1 - self.beta1**self.step_count
        bias_correction2_sqrt = math.sqrt(1 - self.beta2**self.step_count)
        step_size = self.lr / bias_correction1
        for name, p in self.params.items():
            g, s = grads[name], self.state[name]
            m, v = s["exp_avg"], s["exp_avg_sq"]
            m += (1 - self.beta1) * (g - m)  # torch: exp_avg.lerp_(grad, 1 - beta1)
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            # eps is added after the bias-corrected square root, as torch does
            denom = array_module(v).sqrt(v)
            denom /= bias_correction2_sqrt
            denom += self.eps
            p -= step_size * (m / denom)
