"""The torch engine: the train state, one GAN step, the EMA generator, checkpoints of the state,
how batches reach the device, and G and D on their own for sampling (`dcgan.engines.Engine`).
`dcgan.loop` drives it; it imports neither the loop nor anything above it.

Everything that influences the next step lives in `TrainState` and round-trips through a
checkpoint; every random draw comes from the loop as a function of (seed, step, critic), so N
steps in one go equal N/2 + save + load + N/2 bit for bit on CPU, and a checkpoint carries no
device RNG state (it resumes on any device).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from . import distributed, pixels
from .augment import FAKE, G_FAKE, REAL, apply_params, augment_rng, draw_params
from .config import RunConfig
from .datasets import ImageSet
from .distributed import ProcessGroup
from .engines import StepInputs
from .errors import CheckpointError, UsageError
from .losses import LOSSES, gradient_penalty, r1_from_logits, r1_penalty
from .models import build_models
from .torch_serialize import restore_state, state_to_arrays  # noqa: F401 (the Engine protocol's)

name = "torch"


def cpu_threads(count: int | None = None) -> int:
    """torch's intra-op thread count (OpenMP and oneDNN), after setting it when `count` is given.
    The count is part of a run's numerics: oneDNN's reductions split by thread."""
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()


def resolve_device(name: str = "auto", group: ProcessGroup | None = None) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device that is absent is a UsageError.
    Under torchrun each rank takes the GPU cuda:LOCAL_RANK."""
    device = _resolve(name)
    if device.type == "cuda" and group is not None and group.world > 1:
        if group.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {group.local_rank} has no GPU ({torch.cuda.device_count()} visible)"
            )
        return torch.device("cuda", group.local_rank)
    return device


def device_type(name: str = "auto") -> str:
    """The kind of device `name` resolves to ("cuda", "mps", "cpu"), to pick a backend."""
    return _resolve(name).type


def _resolve(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UsageError("--device mps was asked for but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name} is not one of auto, cpu, cuda, mps")
    return torch.device(name)


@dataclass
class TrainState:
    config: RunConfig
    device: torch.device
    generator: nn.Module  # the plain modules: what checkpoints, sampling and EMA see
    discriminator: nn.Module
    generator_ema: nn.Module | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    group: ProcessGroup = field(default_factory=ProcessGroup)
    step: int = 0
    elapsed: float = 0.0  # training seconds over all sessions of this run
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able state of hooks (best metric)
    # what the step calls: DDP wrappers of the modules under torchrun, else the modules
    g_train: nn.Module | None = None
    d_train: nn.Module | None = None
    precision: str = "fp32"  # what the step computes in: the config's, with auto resolved

    def __post_init__(self):
        self.g_train = self.g_train or self.generator
        self.d_train = self.d_train or self.discriminator

    @property
    def sampler(self) -> nn.Module:
        """The generator to sample from: the EMA one when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator


def create_state(
    config: RunConfig, device: torch.device, group: ProcessGroup | None = None
) -> TrainState:
    """Fresh models (seeded: every rank builds the same ones) and optimizers for a run. Under
    several ranks BatchNorm is synchronised and the modules are wrapped in DDP."""
    cfg = config.train
    group = group or ProcessGroup()
    torch.manual_seed(cfg.seed)
    generator, discriminator = build_models(config.model)
    if group.world > 1:
        generator = distributed.sync_batchnorm(generator, device)
        discriminator = distributed.sync_batchnorm(discriminator, device)
    generator.to(device)
    discriminator.to(device)
    if _channels_last(cfg, device):  # parameters, so activations, NHWC; state dict keys unchanged
        generator.to(memory_format=torch.channels_last)
        discriminator.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(generator).requires_grad_(False) if cfg.ema else None
    if cfg.compile:  # compiles forward in place: the modules and state dict keys stay the same
        generator.compile()
        discriminator.compile()
    g_train = d_train = None
    if group.world > 1:
        g_train, d_train = (
            distributed.wrap(generator, device),
            distributed.wrap(discriminator, device),
        )
    return TrainState(
        config=config,
        device=device,
        generator=generator,
        discriminator=discriminator,
        generator_ema=ema,
        opt_g=_adam(generator, cfg.lr_g, cfg),
        opt_d=_adam(discriminator, cfg.lr_d, cfg),
        group=group,
        g_train=g_train,
        d_train=d_train,
        precision=resolve_precision(cfg.precision, device, group),
    )


def resolve_precision(
    precision: str, device: torch.device, group: ProcessGroup | None = None
) -> str:
    """The precision ("fp32" or "bf16") a run's setting means on this device. auto is bf16 on
    CPUs with AMX, where it measured 1.5-2.4x the steps per second and as good or better samples
    in equal time (bench/README.md, "bf16 on AMX: the default"), and fp32 elsewhere: on other
    CPUs bf16 gained less and was not measured for quality at equal time, and on GPUs nothing is
    measured yet. All ranks of a multi-process run take bf16 only if every one of them has AMX."""
    if precision != "auto":
        return precision
    from .perf import amx_bf16

    fast = device.type == "cpu" and amx_bf16()
    group = group or ProcessGroup()
    return "bf16" if not group.any(not fast) else "fp32"


def _adam(module: nn.Module, lr: float, cfg) -> torch.optim.Optimizer:
    # torch's defaults: foreach on CUDA; on CPU foreach and fused measured no faster (bench/)
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(cfg.beta1, cfg.beta2))


def train_step(state: TrainState, inputs: StepInputs) -> dict[str, torch.Tensor]:
    """One generator update after len(inputs.reals) (= n_critic) discriminator updates.

    `inputs` holds this rank's share of the step's real batches and draws (engines.StepInputs:
    NumPy arrays, pure functions of seed, step and critic index) and the EMA decay. Returns
    detached device scalars (no host sync): loss_d, loss_g, d_real, d_fake.
    """
    loss = LOSSES[state.config.train.loss]
    aug = _augmenter(state)
    one_critic = len(inputs.reals) == 1
    # a conditional run's labels, each array on the device once: () per draw when unconditional,
    # so every call below is unchanged
    ys_real = _labels(inputs.labels, len(inputs.reals), state)
    ys_fake = _labels(inputs.fake_labels, len(inputs.z), state)
    for k, x_real in enumerate(inputs.reals):
        loss_d, logits_real, logits_fake, fake = _d_step(
            state, inputs, k, x_real, (ys_real[k], ys_fake[k]), aug, loss
        )
    y_fake = ys_fake[-1]
    if not one_critic:  # with several critic steps, G gets a fresh fake
        with _autocast(state):
            fake = state.g_train(_device(inputs.z[-1], state), *y_fake)
    loss_g = _g_step(state, fake, y_fake, len(inputs.reals) - 1, aug, loss)
    if state.generator_ema is not None:
        update_ema(state.generator_ema, state.generator, inputs.ema_decay)
    score = torch.sigmoid if loss.probabilities else (lambda t: t)
    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_real": score(logits_real.detach()).mean(),
        "d_fake": score(logits_fake.detach()).mean(),
    }


def _d_step(state: TrainState, inputs: StepInputs, k: int, x_real, ys: tuple, aug, loss):
    """Critic update k: D's loss on the real batch and a fake from z[k] (plus R1 or the gradient
    penalty when asked), one Adam step; ys: the real and fake labels' argument tuples. Returns
    (loss_d, logits_real, logits_fake, the fake)."""
    cfg = state.config.train
    G, D = state.g_train, state.d_train
    one_critic = len(inputs.reals) == 1
    # R1 through the step's own real logits in one process; under DDP through the plain D (as
    # the gradient penalty), since autograd.grad through a DDP forward is not supported
    r1_inline = cfg.r1_gamma > 0 and state.group.world == 1
    if _channels_last(cfg, state.device):
        x_real = x_real.contiguous(memory_format=torch.channels_last)
    # with one critic step G's update reuses this fake, so it keeps its graph; critic-only
    # fakes build none (and a DDP forward without a backward would stall its reducer)
    y_real, y_fake = ys
    with _autocast(state), torch.set_grad_enabled(one_critic):
        fake = G(_device(inputs.z[k], state), *y_fake)
    if r1_inline:
        x_real = x_real.detach().requires_grad_(True)
    with _autocast(state):  # the logits (N,) go back to fp32 for the losses
        logits_real = D(aug(x_real, k, REAL), *y_real).float()
        logits_fake = D(aug(fake.detach(), k, FAKE), *y_fake).float()
    loss_d = loss.d_loss(logits_real, logits_fake)
    plain_d = lambda x: state.discriminator(x, *y_real)  # noqa: E731
    if cfg.r1_gamma > 0:
        if r1_inline:
            r1 = r1_from_logits(logits_real, x_real)
        else:
            r1 = r1_penalty(lambda x, k=k: plain_d(aug(x, k, REAL)), x_real)
        loss_d = loss_d + cfg.r1_gamma / 2 * r1
    if loss.gradient_penalty:
        # through the plain module: autograd.grad with create_graph is not DDP's business; the
        # penalty's parameter gradients join D's in the backward below and are reduced with them
        # (DDP's hooks fire once per parameter with the summed gradient)
        alpha = _device(inputs.gp_weights[k], state)
        loss_d = loss_d + cfg.gp_weight * gradient_penalty(
            plain_d, x_real.detach(), fake.detach(), alpha
        )
    state.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    state.opt_d.step()
    return loss_d, logits_real, logits_fake, fake


def _g_step(state: TrainState, fake: torch.Tensor, y: tuple, k: int, aug, loss) -> torch.Tensor:
    """G's update through D's verdict on `fake` (augmented as critic step k's). G's loss runs
    through the plain D with its weights frozen: D gets no gradient from it, and a forward
    through the DDP wrapper would arm D's reducer for gradients that never come (the next D step
    would then fail). The BatchNorm inside is still synchronised."""
    D_plain = state.discriminator
    D_plain.requires_grad_(False)
    try:
        with _autocast(state):
            logits_gen = D_plain(aug(fake, k, G_FAKE), *y).float()
        loss_g = loss.g_loss(logits_gen)
        state.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        state.opt_g.step()
    finally:  # an error (e.g. a lost rank) must not leave D frozen for whoever catches it
        D_plain.requires_grad_(True)
    return loss_g


def _augmenter(state: TrainState):
    """aug(x, critic, purpose): DiffAugment with parameters drawn for the global batch from
    (seed, step, critic, purpose) and sharded by rank; the identity when augment is off."""
    cfg = state.config.train
    if not cfg.augment:
        return lambda x, k, purpose: x

    def aug(x: torch.Tensor, k: int, purpose: int) -> torch.Tensor:
        _, c, h, w = x.shape
        rng = augment_rng(cfg.seed, state.step, k, purpose)
        params = draw_params(cfg.augment, cfg.batch_size, c, h, w, rng)
        return apply_params(x, params.shard(state.group.rank, state.group.world))

    return aug


def _labels(labels: list[np.ndarray] | None, n: int, state: TrainState) -> list[tuple]:
    """Per draw, the nets' extra arguments: (labels on the device,) for a conditional run; ()
    for an unconditional one, whose nets take no labels."""
    return [()] * n if labels is None else [(_device(y, state),) for y in labels]


def _device(array: np.ndarray, state: TrainState) -> torch.Tensor:
    return torch.from_numpy(array).to(state.device, non_blocking=True)


def _channels_last(cfg, device: torch.device) -> bool:
    # MPS's channels-last convolutions have been slow or wrong in several torch releases
    return cfg.channels_last and device.type != "mps"


def _autocast(state: TrainState) -> torch.autocast:
    """bf16 autocast of the forward passes when asked for (convolutions in bf16; autocast keeps
    what needs fp32 in fp32); a no-op context for fp32."""
    enabled = state.precision == "bf16"
    return torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for the parameters and for BatchNorm's running
    statistics alike, so the EMA generator's statistics belong to its averaged weights (copying
    the raw G's, as before, paired them with other weights: digits FD 52.0 against 50.1 averaged
    and 50.3 recalibrated by forward passes, bench/README.md "EMA BatchNorm statistics");
    integer buffers (num_batches_tracked) are copied."""
    ema_params, params = list(ema.parameters()), list(model.parameters())
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        if b.dtype.is_floating_point:
            b_ema.lerp_(b, 1.0 - decay)
        else:
            b_ema.copy_(b)


@torch.no_grad()
def generate(generator: nn.Module, z, batch_size: int = 256, labels=None) -> np.ndarray:
    """Images from latents float32 (N, latent_dim) (host array or tensor), in eval mode, as uint8
    (N, C, H, W); a conditional G also takes labels int64 (N,) or class weights float32 (N, K).
    The module's mode is restored."""
    device = next(generator.parameters()).device
    z = torch.as_tensor(z, dtype=torch.float32).to(device)
    y = None if labels is None else torch.as_tensor(labels).to(device)
    was_training = generator.training
    generator.eval()
    out = []
    for start in range(0, len(z), batch_size):
        args = [t[start : start + batch_size] for t in (z, y) if t is not None]
        x = pixels.model_to_uint8(generator(*args))
        out.append(x.contiguous().cpu())  # NCHW whatever the module's memory format
    generator.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def score(discriminator: nn.Module, images: np.ndarray, batch_size: int = 512, labels=None):
    """D's logits (float64, (N,)) for uint8 images (N, C, H, W): higher means "more real"; a
    conditional D judges them as the classes `labels` (N,)."""
    device = next(discriminator.parameters()).device
    chunks = max(1, math.ceil(len(images) / batch_size))
    ys = np.array_split(labels, chunks) if labels is not None else [None] * chunks
    out = []
    for chunk, y in zip(np.array_split(images, chunks), ys):
        x = pixels.uint8_to_model(torch.from_numpy(chunk).to(device))
        extra = () if y is None else (torch.as_tensor(y).to(device),)
        out.append(discriminator(x, *extra).double().cpu())
    return torch.cat(out).numpy()


def load_models(
    config: RunConfig, generator: dict, discriminator: dict | None, device: torch.device
) -> tuple[nn.Module, nn.Module | None]:
    """G and D (None when no arrays are given) in eval mode on `device`, from state-dict arrays
    (dcgan.artefact.Weights); a mismatch with the config is a CheckpointError."""
    g, d = build_models(config.model)
    modules = [(g, generator)] + ([(d, discriminator)] if discriminator is not None else [])
    try:
        for module, arrays in modules:
            module.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in arrays.items()})
    except RuntimeError as e:
        raise CheckpointError(f"does not match its config ({str(e).splitlines()[0]})") from None
    d = d if discriminator is not None else None
    for module in (g, d):
        if module is not None:
            module.to(device).eval()
            if _sample_channels_last(config, device):
                module.to(memory_format=torch.channels_last)
    return g, d


def _sample_channels_last(config: RunConfig, device: torch.device) -> bool:
    """NHWC generation, as training uses it: measured on CPU 1.26-1.31x at 28/32/64 px
    (bench/README.md, "Generation"); never on MPS (see _channels_last)."""
    return config.model.kind == "dcgan" and _channels_last(config.train, device)


# ---------------------------------------------------------------------------------------------
# the data


def feeder(state: TrainState, data: ImageSet):
    """`batch(indices) -> model-range batch on the device` for the loop. uint8 images, often a
    read-only memory map of the prepared cache: on CPU each batch is gathered from it (only the
    touched pages are read); a set that fits is kept on the device instead."""
    images = data.images
    if device_resident(images.nbytes, state.device):
        images = copy_to_device(images, state.device)
    return lambda idx: pixels.uint8_to_model(_gather(images, idx, state.device))


def device_resident(nbytes: int, device: torch.device) -> bool:
    """Keep the whole uint8 set on the accelerator when it takes at most a quarter of the free
    memory there (the rest is for the models and activations); batches are then indexed and
    normalised on the device with no host work per step. Larger sets, and CPU runs, gather
    each batch from the host array (a memory map of the prepared cache)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 4
    return device.type != "cpu"  # mps and others report no free memory: small sets assumed


def copy_to_device(images: np.ndarray, device: torch.device, block: int = 8192) -> torch.Tensor:
    """A uint8 array (often a read-only memmap) as one tensor on `device`, copied a block at a
    time so the host never holds a second copy of a large set."""
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    for start in range(0, len(images), block):
        chunk = torch.from_numpy(np.array(images[start : start + block]))  # a writable copy
        out[start : start + len(chunk)].copy_(chunk)
    return out


def _gather(
    images: np.ndarray | torch.Tensor, idx: np.ndarray, device: torch.device
) -> torch.Tensor:
    """The batch `idx` of uint8 images on `device`, from a host array (memmap) or a device
    tensor."""
    if isinstance(images, torch.Tensor):
        return images[torch.tensor(idx, device=images.device)]
    batch = torch.from_numpy(images[idx])  # fancy indexing copies: a writable host array
    return batch if device.type == "cpu" else batch.pin_memory().to(device, non_blocking=True)


def load_state(
    path, device: torch.device, config: RunConfig | None = None, group: ProcessGroup | None = None
) -> TrainState:
    """Rebuild a train state from a checkpoint file of either engine (its own config unless one
    is given); under torchrun every rank loads the same file."""
    arrays, meta = ckpt.read_checkpoint(path)
    config = config or RunConfig.from_dict(meta["config"])
    state = create_state(config, device, group)
    restore_state(state, arrays, meta)
    return state
