"""Train the shipped digit classifier deterministically on the bundled digits and write
src/dcgan/assets/digit_classifier.safetensors. Run: python scripts/train_digit_classifier.py

The bundled set is MNIST's 10k test images; the first 8,000 of a seeded permutation train the
network and the other 2,000 give the reported held-out accuracy.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dcgan.datasets import load_digits_raw
from dcgan.metrics.digits import DigitClassifier

OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "dcgan"
    / "assets"
    / "digit_classifier.safetensors"
)


def shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random translations of up to 2 px: generated digits are less well centred than MNIST's."""
    dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # thread count can change float summation order
    images, labels = load_digits_raw()
    x = torch.from_numpy(images.copy()).float()[:, None] * (2 / 255) - 1
    y = torch.from_numpy(labels.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(args.seed).permutation(len(x)))
    train, held = order[:8000], order[8000:]

    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.epochs)
    g = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            _, logits = model(shift(x[idx], g))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x[held])[1].argmax(1) == y[held]).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}, held-out accuracy {acc:.4f}")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {
        "held_out_accuracy": round(acc, 4),
        "train": 8000,
        "held_out": 2000,
        "epochs": args.epochs,
        "seed": args.seed,
    }
    # one metadata key: safetensors writes several keys in hash order, which breaks byte equality
    save_file(state, str(args.out), metadata={"dcgan": json.dumps(meta, sort_keys=True)})
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.time() - start:.1f} s; "
        f"held-out accuracy {acc:.4f}"
    )


if __name__ == "__main__":
    main()
