"""The reference trainer: a faithful rebuild of how pytorch/examples `dcgan/main.py` trains.

torchvision is not importable here, so its ImageFolder, Resize, CenterCrop, ToTensor, Normalize
and save_image are rebuilt with PIL + torch along torchvision's PIL code paths; the rest (nets,
Sigmoid + BCELoss, Adam, the loop, `.item()` and a printed line every step) follows main.py.

    .venv/bin/python bench/baseline_pytorch_examples.py --dataroot /work/shared/datasets/cifar10_test \
        --batchSize 64 --steps 20
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.utils.data
from PIL import Image
from torch import nn, optim

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


# ---------------------------------------------------------------------------------------------
# torchvision stand-ins (datasets.ImageFolder, transforms, utils.save_image), PIL paths only


class ImageFolder(torch.utils.data.Dataset):
    """root/<class>/<file>: classes sorted, files sorted per class, decoded by PIL in __getitem__
    (in the DataLoader's workers), converted to RGB, then transformed, as torchvision does."""

    def __init__(self, root: str, transform):
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.samples = []
        for index, name in enumerate(classes):
            for folder, _, files in sorted(os.walk(Path(root, name), followlinks=True)):
                for f in sorted(files):
                    if f.lower().endswith(IMG_EXTENSIONS):
                        self.samples.append((os.path.join(folder, f), index))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        with open(path, "rb") as f:
            img = Image.open(f).convert("RGB")
        return self.transform(img), target


class Compose:
    def __init__(self, transforms):
        self.transforms = transforms

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Resize:
    """Resize(int): the short side to `size`, the long side scaled (truncated), PIL bilinear."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.size, int(self.size * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        if (new_w, new_h) == (w, h):
            return img
        return img.resize((new_w, new_h), Image.BILINEAR)


class CenterCrop:
    def __init__(self, size: int):
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        top, left = int(round((h - self.size) / 2.0)), int(round((w - self.size) / 2.0))
        return img.crop((left, top, left + self.size, top + self.size))


class ToTensor:
    """PIL RGB -> float32 (C, H, W) in [0, 1]."""

    def __call__(self, pic: Image.Image) -> torch.Tensor:
        img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
        img = img.view(pic.size[1], pic.size[0], len(pic.getbands())).permute((2, 0, 1))
        return img.contiguous().to(dtype=torch.float32).div(255)


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype)[:, None, None]
        std = torch.as_tensor(self.std, dtype=tensor.dtype)[:, None, None]
        return tensor.sub(mean).div(std)


def save_image(tensor: torch.Tensor, fp, nrow: int = 8, padding: int = 2) -> None:
    """utils.save_image(..., normalize=True): min-max scaled, an 8-wide grid with 2 px borders."""
    t = tensor.detach().clone()
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-5)
    n, c, h, w = t.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * (h + padding) + padding, cols * (w + padding) + padding)
    for k in range(n):
        y, x = (k // cols) * (h + padding) + padding, (k % cols) * (w + padding) + padding
        grid[:, y : y + h, x : x + w] = t[k]
    array = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
    Image.fromarray(array).save(fp)


# ---------------------------------------------------------------------------------------------
# main.py's networks, init and loop


def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # state size. (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size. (nc) x 64 x 64
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            # input is (nc) x 64 x 64
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 32 x 32
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*4) x 8 x 8
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*8) x 4 x 4
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


class ExamplesTrainer:
    """main.py's `--dataset folder` run as an object, so a benchmark can advance it `steps` at a
    time: the epoch loop, per-step labels, `.item()` and a printed line, the grid every 100 steps
    and the .pth files at each epoch end are all kept (the prints go to `log`). With
    `compute_only=N` it cycles N batches decoded up front instead: main.py's step alone."""

    def __init__(
        self,
        dataroot: str,
        batch_size: int = 64,
        image_size: int = 64,
        workers: int = 2,
        seed: int = 1,
        outf: str | None = None,
        log=None,
        niter: int = 25,
        device: str = "cpu",
        compute_only: int = 0,
    ):
        random.seed(seed)
        torch.manual_seed(seed)
        self.dataset = ImageFolder(
            dataroot,
            transform=Compose(
                [
                    Resize(image_size),
                    CenterCrop(image_size),
                    ToTensor(),
                    Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
                ]
            ),
        )
        self.dataloader = torch.utils.data.DataLoader(
            self.dataset, batch_size=batch_size, shuffle=True, num_workers=workers
        )
        self.device = torch.device(device)  # main.py: "cuda:0" with --cuda, else "cpu"
        self.nz = 100
        self.netG = Generator(self.nz).to(self.device)
        self.netG.apply(weights_init)
        self.netD = Discriminator().to(self.device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.fixed_noise = torch.randn(batch_size, self.nz, 1, 1, device=self.device)
        self.optimizerD = optim.Adam(self.netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self.optimizerG = optim.Adam(self.netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
        self._tmp = None if outf else tempfile.TemporaryDirectory(prefix="dcgan-examples-")
        self.outf = outf or self._tmp.name
        self.log = log if log is not None else open(os.devnull, "w")  # noqa: SIM115
        self.niter = niter
        self._loop = self._preloaded(compute_only) if compute_only else self._batches()

    def _preloaded(self, count: int):
        """The compute-only variant: `count` batches decoded once, then cycled with the same
        step (no DataLoader, no JPEG decoding in the timed loop)."""
        batches = []
        for i, data in enumerate(self.dataloader):
            if i == count:
                break
            batches.append(data)
        while True:
            for i, data in enumerate(batches):
                yield 0, i, data

    def _batches(self):
        for epoch in range(self.niter):
            for i, data in enumerate(self.dataloader, 0):
                yield epoch, i, data
            # do checkpointing
            torch.save(self.netG.state_dict(), f"{self.outf}/netG_epoch_{epoch}.pth")
            torch.save(self.netD.state_dict(), f"{self.outf}/netD_epoch_{epoch}.pth")

    def run(self, steps: int) -> None:
        """Advance the training loop by `steps` iterations (one D and one G update each)."""
        netD, netG, criterion, device, nz = (
            self.netD,
            self.netG,
            self.criterion,
            self.device,
            self.nz,
        )
        real_label, fake_label = 1, 0
        for _ in range(steps):
            epoch, i, data = next(self._loop)
            ############################
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            ###########################
            # train with real
            netD.zero_grad()
            real_cpu = data[0].to(device)
            batch_size = real_cpu.size(0)
            label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)

            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()

            # train with fake
            noise = torch.randn(batch_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            self.optimizerD.step()

            ############################
            # (2) Update G network: maximize log(D(G(z)))
            ###########################
            netG.zero_grad()
            label.fill_(real_label)  # fake labels are real for generator cost
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            self.optimizerG.step()

            print(
                "[%d/%d][%d/%d] Loss_D: %.4f Loss_G: %.4f D(x): %.4f D(G(z)): %.4f / %.4f"  # noqa: UP031
                % (
                    epoch,
                    self.niter,
                    i,
                    len(self.dataloader),
                    errD.item(),
                    errG.item(),
                    D_x,
                    D_G_z1,
                    D_G_z2,
                ),
                file=self.log,
            )
            if i % 100 == 0:
                save_image(real_cpu, f"{self.outf}/real_samples.png")
                fake = netG(self.fixed_noise)
                save_image(fake.detach(), f"{self.outf}/fake_samples_epoch_{epoch:03d}.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataroot", default="/work/shared/datasets/cifar10_test")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batchSize", type=int, default=64)
    parser.add_argument("--imageSize", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="iterations to time")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--outf", help="where grids and .pth files go (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = ExamplesTrainer(
        args.dataroot, args.batchSize, args.imageSize, args.workers, outf=args.outf, log=sys.stdout
    )
    trainer.run(2)  # warm-up: workers start, oneDNN picks its kernels
    start = time.perf_counter()
    trainer.run(args.steps)
    seconds = time.perf_counter() - start
    print(f"{args.steps * args.batchSize / seconds:.1f} img/s over {args.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
