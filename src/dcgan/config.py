"""Run configuration: frozen dataclasses for the model, data and training, validated, JSON round-trip.

A run's `config.json` is `RunConfig.to_dict()`; it holds everything needed to rebuild the models
and resume training, so `generate` and `--resume` need no flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

SCHEMA_VERSION = 1
LOSSES = ("bce", "lsgan", "hinge", "wgan-gp")
PENALTY_LOSSES = ("wgan-gp",)  # losses whose D step adds a gradient penalty on interpolates
DIVERGENCE_ACTIONS = ("rollback", "stop")
AUGMENTATIONS = ("color", "translation", "cutout")  # DiffAugment's transforms (dcgan.augment)
DIFF_AUGMENT = "color,translation,cutout"  # the paper's full policy
RECIPES = ("default", "paper")
MODEL_KINDS = ("dcgan", "mlp")
DEVICES = ("auto", "cpu", "cuda", "mps")
DCGAN_SIZES = (28, 32, 64, 128)
ENGINES = ("torch", "numpy")
PRECISIONS = ("fp32", "bf16")
D_NORMS = ("batch", "none", "layer")  # D's normalisation: BatchNorm (the paper), none, GroupNorm(1)


def size_defaults(kind: str, image_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Defaults that depend on the net, as (ModelConfig fields, TrainConfig fields) that replace
    the dataclass defaults wherever the user gave no value (`dcgan train` applies them).

    The 28 px DCGAN (the bundled digits and the MNIST-likes) trains at width 32 and lr 6e-4:
    measured on the digits (bench/README.md, "Time to quality"), it draws recognisable digits
    (digits FD <= 100) after 51-64k images instead of ~128k, runs 2.3x the images per second of
    width 64, and ends the default 20 epochs at digits FD 44-58 instead of 72-80. Every other
    net keeps the paper's settings (ngf = ndf = 64, lr 2e-4).
    """
    if kind == "dcgan" and image_size == 28:
        return {"g_features": 32, "d_features": 32}, {"lr_g": 6e-4, "lr_d": 6e-4}
    return {}, {}


def recipe_defaults(
    recipe: str, kind: str, image_size: int, loss: str = "bce"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (ModelConfig fields, TrainConfig fields) of a named recipe, for the fields the user
    did not set (`dcgan train --recipe`).

    - "paper": Radford et al.'s DCGAN as published: widths 64, Adam 2e-4 / 0.5, BCE, no
      augmentation. For reproducing the paper.
    - "default": what measures best on a CPU budget (bench/README.md, "Quality"): the 28 px net
      at width 32 and lr 6e-4 (size_defaults); at 64 px and above DiffAugment (colour,
      translation, cutout), without which small folders of flat icons collapse to one grey
      texture (D wins within 200 steps).

    Both: WGAN-GP's critic has no BatchNorm (GroupNorm(1) instead): the per-sample gradient
    penalty is invalid through batch statistics (Gulrajani et al. 2017, section 4).
    """
    if recipe not in RECIPES:
        raise UsageError(f"--recipe {recipe} is not one of {', '.join(RECIPES)}")
    model: dict[str, Any] = {}
    train: dict[str, Any] = {"recipe": recipe}
    if recipe == "default":
        m, t = size_defaults(kind, image_size)
        model |= m
        train |= t
        if kind == "dcgan" and image_size >= 64:
            train["augment"] = DIFF_AUGMENT
    if loss in PENALTY_LOSSES:
        model["d_norm"] = "layer"
    return model, train


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "dcgan"
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 100
    g_features: int = 64  # ngf: width of G's last hidden layer (MLP: a quarter of its first)
    d_features: int = 64  # ndf: width of D's first layer (MLP: an eighth of its first)
    # D's stabilisers (models.py): spectral normalisation of every D weight (Miyato et al. 2018),
    # and the normalisation between its layers; "none"/"layer" keep a per-sample penalty valid
    spectral_norm: bool = False
    d_norm: str = "batch"

    def validate(self) -> None:
        _choice("model", self.kind, MODEL_KINDS)
        _choice("d-norm", self.d_norm, D_NORMS)
        if self.kind == "dcgan" and self.image_size not in DCGAN_SIZES:
            sizes = ", ".join(map(str, DCGAN_SIZES))
            raise UsageError(f"--image-size {self.image_size} is not supported; use one of {sizes}")
        _positive("image-size", self.image_size)
        _choice("channels", self.channels, (1, 3))
        for name in ("latent_dim", "g_features", "d_features"):
            _positive(name.replace("_", "-"), getattr(self, name))


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # "digits" (bundled MNIST test set), a standard set's name, or a folder
    channels: int | None = None  # None: 1 when every image is grayscale, else 3
    split: str = "train"  # of a standard set (mnist: train/test; svhn: train/test/extra; ...)
    data_dir: str | None = None  # where its downloaded files are (None: $DCGAN_HOME/datasets)


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "bce"
    batch_size: int = 64
    epochs: int = (
        20  # the default run: ~3,100 steps on the bundled digits, about 3 minutes on 2 CPU cores
    )
    steps: int | None = None  # overrides epochs when set
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1  # D steps per G step (WGAN-GP uses 5)
    gp_weight: float = 10.0  # gradient-penalty weight for wgan-gp
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    sample_count: int = 64  # images in the fixed-noise grid
    eval_every: int = 0  # steps per evaluation during training (0: off)
    eval_metrics: str = ""  # comma-separated metric names ("": the cheap ones for the data)
    eval_num: int = 2000  # generated images per evaluation
    engine: str = "torch"  # "numpy": dcgan.numpy_engine (no torch); a resume may switch it
    # speed options of the torch engine (bench/README.md, "Training speed (CPU)"); a resume may
    # switch them. bf16: autocast of G and D's convolutions, the losses stay fp32
    precision: str = "fp32"
    channels_last: bool = True  # NHWC activations: 1.1-1.35x on CPU (oneDNN); not on MPS
    compile: bool = False  # torch.compile G and D: a long first step, then faster ones
    # non-finite losses: roll back to the newest checkpoint with half the learning rates (at most
    # max_rollbacks times), or stop with the last good checkpoint kept
    on_divergence: str = "rollback"
    max_rollbacks: int = 2
    # stabilisers (bench/README.md, "Quality"): DiffAugment policy ("" off; "color,translation,
    # cutout" the paper's), and the R1 penalty's gamma on real images (0 off)
    augment: str = ""
    r1_gamma: float = 0.0
    recipe: str = "default"  # the named recipe the defaults came from (config.recipe_defaults)

    def validate(self) -> None:
        _choice("loss", self.loss, LOSSES)
        _choice("engine", self.engine, ENGINES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("on-divergence", self.on_divergence, DIVERGENCE_ACTIONS)
        if not isinstance(self.max_rollbacks, int) or self.max_rollbacks < 0:
            raise UsageError(f"max_rollbacks must be 0 or more, got {self.max_rollbacks}")
        names = [p.strip() for p in str(self.augment).split(",") if p.strip()]
        if any(n not in AUGMENTATIONS for n in names) or len(set(names)) != len(names):
            raise UsageError(
                f"--augment {self.augment!r} must be a comma-separated subset of "
                f"{', '.join(AUGMENTATIONS)} (or none)"
            )
        if not (isinstance(self.r1_gamma, (int, float)) and 0 <= self.r1_gamma < 1e6):
            raise UsageError(f"--r1 must be 0 (off) or a positive number, got {self.r1_gamma}")
        if self.engine == "numpy" and (self.augment or self.r1_gamma):
            raise UsageError("--augment and --r1 need the torch engine")
        if self.engine == "numpy" and (self.precision != "fp32" or self.compile):
            raise UsageError("--precision bf16 and --compile need the torch engine")
        if self.engine == "numpy" and self.loss == "wgan-gp":
            raise UsageError(
                "--loss wgan-gp needs double backprop, which the numpy engine does not have; "
                "use --engine torch or another --loss"
            )
        if self.engine == "numpy" and self.eval_every:
            raise UsageError(
                "--eval-every needs the torch engine (the metrics run on torch); "
                "score a numpy-engine run afterwards with dcgan eval"
            )
        counts = ("batch_size", "epochs", "n_critic", "log_every", "sample_every")
        counts += ("checkpoint_every", "keep_checkpoints", "sample_count")
        for name in counts + (("steps",) if self.steps is not None else ()):
            _positive(name.replace("_", "-"), getattr(self, name))
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise UsageError(
                f"--eval-every must be 0 (off) or a positive integer, got {self.eval_every}"
            )
        _positive("eval-num", self.eval_num)
        for name in ("lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                raise UsageError(
                    f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}"
                )
        for name in ("beta1", "beta2", "ema_decay"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schema_version: int = SCHEMA_VERSION

    def validate(self) -> RunConfig:
        self.model.validate()
        self.train.validate()
        if self.train.engine == "numpy" and (
            self.model.spectral_norm or self.model.d_norm != "batch"
        ):
            raise UsageError(
                "spectral norm and a discriminator without BatchNorm need the torch engine "
                "(the numpy engine has neither)"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise UsageError(
                f"config schema version {version} is not supported (expected {SCHEMA_VERSION})"
            )
        try:
            return cls(
                model=_build(ModelConfig, d["model"]),
                data=_build(DataConfig, d["data"]),
                train=_build(TrainConfig, d["train"]),
                schema_version=version,
            )
        except (KeyError, TypeError) as e:
            raise UsageError(f"config is malformed: {e}") from None


def _build(cls, d: dict[str, Any]):
    """Build a dataclass from a dict, ignoring unknown keys so newer configs still load."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise UsageError(f"--{name} {value} is not one of {', '.join(map(str, choices))}")


def _positive(name: str, value) -> None:
    if not isinstance(value, int) or value <= 0:
        raise UsageError(f"--{name} must be a positive integer, got {value}")
