"""An objective judge of generated digits: a small CNN trained on the bundled digits in seconds.

Used by the learning tests: samples count as recognisable digits when the judge labels most of
them with high confidence and finds most of the ten classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dcgan.datasets import load_digits


def train_judge(seed: int = 0, epochs: int = 3) -> tuple[nn.Module, float]:
    """Train on 9,000 bundled digits; return (classifier in eval mode, accuracy on the other 1,000)."""
    torch.manual_seed(seed)
    data = load_digits()
    x = torch.from_numpy(data.images).float().div_(127.5).sub_(1)  # the model range [-1, 1]
    y = torch.from_numpy(data.labels.astype(np.int64))
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7x7
        nn.Flatten(),
        nn.Linear(64 * 49, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(9000, generator=g).split(100):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x[9000:]).argmax(1) == y[9000:]).float().mean().item()
    return net, accuracy


@torch.no_grad()
def judge(net: nn.Module, images_uint8: np.ndarray) -> dict[str, float]:
    """Share of samples labelled with confidence >= 0.9, and how many classes appear (>= 1%)."""
    x = torch.from_numpy(images_uint8).float().div_(127.5).sub_(1)
    probs = torch.softmax(net(x), 1)
    conf, label = probs.max(1)
    counts = np.bincount(label.numpy(), minlength=10)
    return {
        "confident": (conf >= 0.9).float().mean().item(),
        "classes": int((counts >= 0.01 * len(label)).sum()),
    }
