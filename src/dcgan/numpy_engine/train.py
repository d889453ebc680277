"""The NumPy engine: the train state, one GAN step, EMA, how batches reach the device, and G and
D on their own for sampling.

It implements `dcgan.engines.Engine`, as `dcgan.torch_engine` does, so `dcgan.loop` drives
either engine with the same batch order, random draws, cadences, stats keys and checkpoint
layout: N steps == N/2 + save + load + N/2, bit for bit; and sampling, nice, interpolation and
evaluation are written once for both. No torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import checkpoint as ckpt
from ..config import RunConfig, check_numpy_engine
from ..datasets import ImageSet
from ..engines import Solo, StepInputs
from ..errors import CheckpointError, UsageError
from ..images import model_to_uint8, uint8_to_model
from .backend import get_xp, to_numpy
from .losses import LOSSES, sigmoid
from .models import Discriminator, Generator, build_models
from .optim import Adam
from .serialize import restore_state, state_to_arrays  # noqa: F401 (the Engine protocol's)

name = "numpy"


def cpu_threads(count: int | None = None) -> None:
    """NumPy's BLAS picks its own threads (OPENBLAS_NUM_THREADS and friends set them)."""
    return None


def resolve_device(name: str = "auto", group=None) -> str:
    """ "cpu" or "cuda" (CuPy). 'auto' picks cuda when CuPy sees a GPU; the rest is a UsageError."""
    if name == "cpu":
        return "cpu"
    if name in ("auto", "cuda"):
        if _cupy_has_gpu():
            return "cuda"
        if name == "cuda":
            raise UsageError(
                "--device cuda with --engine numpy needs CuPy and a CUDA GPU "
                "(pip install cupy-cuda12x); use --device cpu"
            )
        return "cpu"
    raise UsageError(f"--device {name} is not available with --engine numpy; use cpu or cuda")


def _cupy_has_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # not installed, no driver, no device: all mean "no CuPy GPU"
        return False


@dataclass
class TrainState:
    config: RunConfig
    device: str  # "cpu" (NumPy) or "cuda" (CuPy)
    generator: Generator
    discriminator: Discriminator
    generator_ema: Generator | None
    opt_g: Adam
    opt_d: Adam
    group: Solo = field(default_factory=Solo)  # one process: the numpy engine has no DDP
    step: int = 0
    elapsed: float = 0.0  # training seconds over all sessions of this run
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-able state of hooks
    precision: str = "fp32"  # always: --precision auto resolves to it here

    @property
    def sampler(self) -> Generator:
        """The generator to sample from: the EMA one when there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @property
    def xp(self):
        return self.generator.xp


def create_state(config: RunConfig, device: str = "cpu", group=None) -> TrainState:
    """Fresh models (initialised from the seed), Adams and noise generator for a run.

    The initial weights differ from the torch engine's for the same seed (different streams).
    """
    check_numpy_engine(config)
    cfg = config.train
    xp = get_xp(device)
    generator, discriminator = build_models(config.model, np.random.default_rng(cfg.seed), xp)
    ema = None
    if cfg.ema:
        ema = Generator(config.model, xp)
        ema.load_state_dict(generator.state_dict())
    betas = (cfg.beta1, cfg.beta2)
    return TrainState(
        config=config,
        device=device,
        generator=generator,
        discriminator=discriminator,
        generator_ema=ema,
        opt_g=Adam(generator.parameters(), cfg.lr_g, betas),
        opt_d=Adam(discriminator.parameters(), cfg.lr_d, betas),
    )


def train_step(state: TrainState, inputs: StepInputs) -> dict[str, Any]:
    """One generator update after len(inputs.reals) (= n_critic) discriminator updates, with the
    loop's draws (the same z as the torch engine's for the same seed and step).

    Returns device scalars (no host sync): loss_d, loss_g, d_real, d_fake.
    """
    loss = LOSSES[state.config.train.loss]
    G, D = state.generator, state.discriminator
    xp = state.xp
    fake = None
    for k, x_real in enumerate(inputs.reals):
        fake = G(xp.asarray(inputs.z[k]))
        D.zero_grad()
        # the loss is a real term plus a fake term, so the real batch's backward can run before
        # the fake batch's forward (layers cache one forward); the weights do not move between
        logits_real = D(x_real)
        loss_real, dlogits = loss.d_real(logits_real)
        D.backward(dlogits)
        logits_fake = D(fake)
        loss_fake, dlogits = loss.d_fake(logits_fake)
        D.backward(dlogits)
        state.opt_d.step(D.gradients())
        loss_d = loss_real + loss_fake
    if len(inputs.reals) > 1:  # with several critic steps, G gets a fresh fake
        fake = G(xp.asarray(inputs.z[-1]))
    # G's layers still hold the caches of the forward that made `fake`
    logits_gen = D(fake)
    loss_g, dlogits = loss.g_loss(logits_gen)
    dfake = D.backward(dlogits, need_dx=True, need_dw=False)  # D's weights get no gradient
    G.zero_grad()
    G.backward(dfake)
    state.opt_g.step(G.gradients())
    if state.generator_ema is not None:
        update_ema(state.generator_ema, G, inputs.ema_decay)
    score = sigmoid if loss.probabilities else (lambda t: t)
    return {
        "loss_d": loss_d,
        "loss_g": loss_g,
        "d_real": score(logits_real).mean(),
        "d_fake": score(logits_fake).mean(),
    }


def update_ema(ema: Generator, model: Generator, decay: float) -> None:
    """ema = decay * ema + (1 - decay) * model for the parameters and the float buffers
    (BatchNorm's running statistics, as the torch engine does); integer buffers are copied."""
    weight = np.float32(1.0 - decay)
    ema_state = ema.state_dict()  # live arrays, updated in place
    for key, value in model.state_dict().items():
        target = ema_state[key]
        if target.dtype.kind == "f":
            target += weight * (value - target)  # torch's lerp for weights below 0.5
        else:
            target[...] = value


def generate(generator: Generator, z, batch_size: int = 256, labels=None) -> np.ndarray:
    """Images from latents (N, latent_dim), in eval mode, as host uint8 (N, C, H, W).

    The model's mode is restored (its layer caches are not: call between steps, not inside one).
    """
    xp = generator.xp
    was_training = generator.main.layers[0].training
    generator.eval()
    out = []
    for start in range(0, len(z), batch_size):
        x = generator(xp.asarray(z[start : start + batch_size]))
        out.append(to_numpy(model_to_uint8(x)))
    generator.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, *generator.shape), np.uint8)


def score(
    discriminator: Discriminator, images: np.ndarray, batch_size: int = 512, labels=None
) -> np.ndarray:
    """D's logits (float64, (N,)) for uint8 images (N, C, H, W): higher means "more real"."""
    xp = discriminator.xp
    out = []
    for chunk in np.array_split(images, max(1, math.ceil(len(images) / batch_size))):
        logits = discriminator(uint8_to_model(xp.asarray(chunk)))
        out.append(to_numpy(logits).astype(np.float64))
    return np.concatenate(out)


def load_models(
    config: RunConfig, generator: dict, discriminator: dict | None, device: str = "cpu"
) -> tuple[Generator, Discriminator | None]:
    """G and D (None when no arrays are given) in eval mode, from state-dict arrays of either
    engine (dcgan.artefact.Weights); a mismatch with the config is a CheckpointError."""
    if config.model.conditional:
        raise UsageError("a conditional run needs --engine torch (the numpy engine has no classes)")
    xp = get_xp(device)
    try:
        g, d = Generator(config.model, xp), Discriminator(config.model, xp)
    except ValueError as e:
        raise CheckpointError(f"has an unusable config ({e})") from None
    try:
        g.load_state_dict(generator)
        if discriminator is not None:
            d.load_state_dict(discriminator)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"does not match its config ({str(e).splitlines()[0]})") from None
    g.eval()
    d.eval()
    return g, (d if discriminator is not None else None)


# ---------------------------------------------------------------------------------------------
# the data


def feeder(state: TrainState, data: ImageSet):
    """`batch(indices) -> model-range batch` for the loop. Host uint8, often a memory map:
    each batch gathers only its rows; on a CuPy GPU the set is kept on the device."""
    xp = state.xp
    images = data.images
    if xp is not np:
        images = xp.asarray(np.array(images))

    def batch(idx: np.ndarray):
        return uint8_to_model(images[idx] if xp is np else images[xp.asarray(idx)])

    return batch


def load_state(
    path, device: str = "cpu", config: RunConfig | None = None, group=None
) -> TrainState:
    """Rebuild a train state from a checkpoint of either engine (its own config unless given)."""
    arrays, meta = ckpt.read_checkpoint(path)
    config = config or RunConfig.from_dict(meta["config"])
    state = create_state(config, device)
    restore_state(state, arrays, meta)
    return state
