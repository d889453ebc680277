"""Run configuration: frozen dataclasses for the model, data and training, validated, JSON round-trip.

A run's `config.json` is `RunConfig.to_dict()`; it holds everything needed to rebuild the models
and resume training, so `generate` and `--resume` need no flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .values import check_bool, check_choice, check_int, check_real, check_text, kind_of, show

SCHEMA_VERSION = 1
SEED_MAX = 2**63 - 1  # seeds are integers in [0, SEED_MAX] in every command
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
PRECISIONS = ("auto", "fp32", "bf16")
D_NORMS = ("batch", "none", "layer")  # D's normalisation: BatchNorm (the paper), none, GroupNorm(1)


def check_seed(seed: int, flag: str = "--seed") -> int:
    """A seed is an integer in [0, 2**63 - 1] in every command; others are a UsageError."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise UsageError(f"{flag} must be an integer from 0 to {SEED_MAX}, got {seed!r}")
    return seed


# ---------------------------------------------------------------------------------------------
# recipes: the one place that turns a user's partial choices into a full RunConfig

# the paper's settings (Radford et al. 2015): what every field left to the recipe falls back to
PAPER_MODEL = {"g_features": 64, "d_features": 64, "d_norm": "batch"}
PAPER_TRAIN = {
    "batch_size": 64, "epochs": 20, "lr_g": 2e-4, "lr_d": 2e-4, "n_critic": 1, "augment": "",
}  # fmt: skip


def size_defaults(kind: str, image_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The default recipe's departures from the paper for one net, as (ModelConfig fields,
    TrainConfig fields). The 28 px DCGAN trains at width 32, batch 128, lr_g 8e-4 / lr_d 1.6e-3
    for 50 epochs: at equal time on the digits, digits FD 23.9 / 40.0 / 32.2 (seeds 0-2) against
    42.2 / 34.7 / 45.2 before, and 2.3x the img/s of width 64 (bench/README.md, "Digits at equal
    training time"). Every other net keeps the paper's settings."""
    if kind == "dcgan" and image_size == 28:
        model = {"g_features": 32, "d_features": 32}
        return model, {"batch_size": 128, "lr_g": 8e-4, "lr_d": 1.6e-3, "epochs": 50}
    return {}, {}


def recipe_defaults(
    recipe: str, kind: str, image_size: int, loss: str = "bce", engine: str = "torch"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (ModelConfig fields, TrainConfig fields) of a named recipe: every field a user may
    leave to the recipe (those that default to None in the dataclasses).

    - "paper": Radford et al.'s DCGAN as published: widths 64, Adam 2e-4 / 0.5, batch 64, BCE, no
      augmentation. For reproducing the paper.
    - "default": what measures best on a CPU budget (bench/README.md, "Quality"): the 28 px net
      at width 32, batch 128 and two time-scales (size_defaults); at 64 px and above DiffAugment
      (colour, translation, cutout), without which small folders of flat icons collapse to one
      grey texture (D wins within 200 steps). The NumPy engine has no DiffAugment, so it gets
      the rest of the recipe without it.

    Both: WGAN-GP's critic has no BatchNorm (GroupNorm(1) instead): the per-sample gradient
    penalty is invalid through batch statistics (Gulrajani et al. 2017, section 4); and it
    takes 5 critic steps per generator step, as the paper does.
    """
    if recipe not in RECIPES:
        raise UsageError(f"--recipe {show(recipe)} is not one of {', '.join(RECIPES)}")
    model, train = dict(PAPER_MODEL), dict(PAPER_TRAIN)
    if recipe == "default":
        m, t = size_defaults(kind, image_size)
        model |= m
        train |= t
        big = isinstance(image_size, int) and image_size >= 64  # (validate() names a bad size)
        if kind == "dcgan" and big and engine != "numpy":
            train["augment"] = DIFF_AUGMENT
    if loss in PENALTY_LOSSES:
        model["d_norm"] = "layer"
        train["n_critic"] = 5
    return model, train


def resolve(model: ModelConfig, data: DataConfig, train: TrainConfig):
    """The recipe's values for every field the user left as None: (ModelConfig, TrainConfig).

    The image size comes from the data (28 px for the digits and MNIST-likes, 32 for CIFAR and
    SVHN, 64 for folders), then the named recipe (train.recipe) fills the rest for that size,
    net, loss and engine. Values of the wrong type are left for validate() to report."""
    if not all(isinstance(p, c) for p, c in zip((model, data, train), _PARTS.values())):
        return model, train
    if model.image_size is None:
        model = dataclasses.replace(model, image_size=_default_image_size(data.source))
    if not isinstance(train.recipe, str):
        return model, train
    m, t = recipe_defaults(train.recipe, model.kind, model.image_size, train.loss, train.engine)
    model = dataclasses.replace(model, **{k: v for k, v in m.items() if getattr(model, k) is None})
    train = dataclasses.replace(train, **{k: v for k, v in t.items() if getattr(train, k) is None})
    return model, train


# The image size a source trains at unless asked: the native size of the named sets where a DCGAN
# exists for it (28, 32), else 64 (CelebA, STL-10, folders). tests/test_standard_sets.py checks
# that every named set has its entry.
DEFAULT_SIZES = {
    "digits": 28, "mnist": 28, "fashion-mnist": 28, "kmnist": 28,
    "cifar10": 32, "cifar100": 32, "svhn": 32, "stl10": 64, "celeba": 64,
}  # fmt: skip
FOLDER_SIZE = 64


def default_image_size(source: str) -> int:
    """28 for the digits and MNIST-likes, 32 for CIFAR/SVHN, 64 for CelebA, STL-10 and folders."""
    return DEFAULT_SIZES.get(source, FOLDER_SIZE)


def _default_image_size(source: Any) -> int | None:
    return default_image_size(source) if isinstance(source, str) else None


def check_numpy_engine(config: RunConfig) -> None:
    """What the NumPy engine cannot do (it has no double backprop, DiffAugment, R1, bf16,
    compile, spectral norm, or D without BatchNorm; the metrics run on torch), as one-line
    UsageErrors: checked for every config that names it, and by the engine itself."""
    t, m = config.train, config.model
    if t.loss in PENALTY_LOSSES:
        raise UsageError(
            f"--loss {t.loss} needs double backprop, which the numpy engine does not have; "
            "use --engine torch or another --loss"
        )
    if t.augment or t.r1_gamma:
        raise UsageError("--augment and --r1 need the torch engine")
    if t.precision == "bf16" or t.compile:
        raise UsageError("--precision bf16 and --compile need the torch engine")
    if t.eval_every:
        raise UsageError(
            "--eval-every needs the torch engine (the metrics run on torch); "
            "score a numpy-engine run afterwards with dcgan eval"
        )
    if m.conditional:
        raise UsageError(
            "--conditional needs the torch engine (the numpy engine has no classes yet)"
        )
    if m.spectral_norm or m.d_norm != "batch":
        raise UsageError(
            "spectral norm and a discriminator without BatchNorm need the torch engine "
            "(the numpy engine has neither)"
        )


# What a resume may change: the length, the engine and the speed options (not the model, data or
# maths). The CLI and dcgan.train both check a resume's changes with check_resumable.
RESUMABLE = (
    "steps", "epochs", "engine", "precision", "channels_last", "compile", "on_divergence",
)  # fmt: skip


def check_resumable(names) -> None:
    """A UsageError naming the options (field or flag names) that a resume may not change."""
    bad = sorted(set(names) - set(RESUMABLE))
    if bad:
        flags = ", ".join("--" + k.replace("_", "-") for k in bad)
        raise UsageError(
            f"{flags} cannot change on --resume; only --epochs/--steps/--device/--engine "
            "and the speed options can"
        )


def resume_config(saved: RunConfig, changes: dict[str, Any]) -> RunConfig:
    """The resumed run's config with `changes` (only TrainConfig fields in RESUMABLE; --epochs
    without --steps drops a saved step count, as a longer run in epochs is meant)."""
    check_resumable(changes)
    if "epochs" in changes and "steps" not in changes:
        changes = {**changes, "steps": None}
    train = dataclasses.replace(saved.train, **changes)
    return dataclasses.replace(saved, train=train).validate()


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "dcgan"
    image_size: int | None = None  # None: the data's native size (28 digits, 64 folders)
    channels: int = 1
    latent_dim: int = 100
    # None: the recipe's choice (config.recipe_defaults) for every field below that allows it;
    # g_features: ngf, G's last hidden width (MLP: a quarter of its first); d_features: ndf, D's
    # first width (MLP: an eighth of its first)
    g_features: int | None = None
    d_features: int | None = None
    # D's stabilisers (models.py): spectral normalisation of every D weight (Miyato et al. 2018),
    # and the normalisation between its layers; "none"/"layer" keep a per-sample penalty valid
    spectral_norm: bool = False
    d_norm: str | None = None
    # class-conditional (models.py): G through conditional BatchNorm, D a projection
    # discriminator; class_names (label k is class_names[k]) come from the data when it trains
    conditional: bool = False
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        if isinstance(self.class_names, list):  # from JSON
            object.__setattr__(self, "class_names", tuple(self.class_names))

    @property
    def num_classes(self) -> int:
        """Classes of a conditional net (0: unconditional)."""
        return len(self.class_names) if self.conditional else 0

    def validate(self) -> None:
        check_choice("model", self.kind, MODEL_KINDS)
        check_choice("d-norm", self.d_norm, D_NORMS)
        check_bool("spectral-norm", self.spectral_norm)
        if self.kind == "dcgan":
            check_choice("image-size", self.image_size, DCGAN_SIZES)
        else:
            check_int("image-size", self.image_size, *MLP_SIZE_RANGE)
        check_choice("channels", self.channels, (1, 3))
        check_int("latent-dim", self.latent_dim, 1, MAX_LATENT_DIM)
        check_int("g-features", self.g_features, 1, MAX_FEATURES)
        check_int("d-features", self.d_features, 1, MAX_FEATURES)
        check_bool("conditional", self.conditional)
        names = self.class_names
        if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
            raise UsageError(f"class names must be a list of strings, got {show(names)}")
        for n in names:
            check_text("class name", n)
        if len(set(names)) != len(names) or len(names) > MAX_CLASSES:
            raise UsageError(
                f"class names must be distinct and at most {MAX_CLASSES}, got {show(names)}"
            )
        if names and not self.conditional:
            raise UsageError("class names belong to a conditional model (--conditional)")


@dataclass(frozen=True)
class DataConfig:
    source: str = "digits"  # "digits" (bundled MNIST test set), a standard set's name, or a folder
    channels: int | None = None  # None: 1 when every image is grayscale, else 3
    split: str = "train"  # of a standard set (mnist: train/test; svhn: train/test/extra; ...)
    data_dir: str | None = None  # where its downloaded files are (None: $DCGAN_HOME/datasets)

    def validate(self) -> None:
        check_text("data", self.source)
        if self.channels is not None:
            check_choice("channels", self.channels, (1, 3))
        check_text("split", self.split)
        if self.data_dir is not None:
            check_text("data-dir", self.data_dir)


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "bce"
    batch_size: int | None = None
    epochs: int | None = None
    steps: int | None = None  # overrides epochs when set
    lr_g: float | None = None
    lr_d: float | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int | None = None  # D steps per G step (WGAN-GP's recipe: 5)
    gp_weight: float = 10.0  # gradient-penalty weight for wgan-gp
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    sample_count: int = 64  # images in the fixed-noise grid
    grid_classes: int = 10  # a conditional run's grid: one row of 8 for each of the first N
    eval_every: int = 0  # steps per evaluation during training (0: off)
    eval_metrics: str = ""  # comma-separated metric names ("": the cheap ones for the data)
    eval_num: int = 2000  # generated images per evaluation
    engine: str = "torch"  # "numpy": dcgan.numpy_engine (no torch); a resume may switch it
    # speed options of the torch engine (bench/README.md, "Training speed (CPU)"); a resume may
    # switch them. bf16: autocast of G and D's convolutions, the losses stay fp32; auto: bf16
    # where it measured faster with samples as good (CPUs with AMX), else fp32; resolved on the
    # device each session runs on (torch_engine.resolve_precision)
    precision: str = "auto"
    channels_last: bool = True  # NHWC activations: 1.1-1.35x on CPU (oneDNN); not on MPS
    compile: bool = False  # torch.compile G and D: a long first step, then faster ones
    # non-finite losses: roll back to the newest checkpoint with half the learning rates (at most
    # max_rollbacks times), or stop with the last good checkpoint kept
    on_divergence: str = "rollback"
    max_rollbacks: int = 2
    # stabilisers (bench/README.md, "Quality"): DiffAugment policy ("" off; "color,translation,
    # cutout" the paper's), and the R1 penalty's gamma on real images (0 off)
    augment: str | None = None
    r1_gamma: float = 0.0
    recipe: str = "default"  # the named recipe the defaults came from (config.recipe_defaults)

    def validate(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("engine", self.engine, ENGINES)
        check_choice("precision", self.precision, PRECISIONS)
        for name in ("ema", "channels_last", "compile"):
            check_bool(name.replace("_", "-"), getattr(self, name))
        check_int("batch-size", self.batch_size, 1, MAX_BATCH)
        check_int("epochs", self.epochs, 1, MAX_COUNT)
        if self.steps is not None:
            check_int("steps", self.steps, 1, MAX_COUNT)
        check_int("n-critic", self.n_critic, 1, MAX_N_CRITIC)
        for name in ("log_every", "sample_every", "checkpoint_every"):
            check_int(name.replace("_", "-"), getattr(self, name), 1, MAX_COUNT)
        check_int("keep", self.keep_checkpoints, 1, MAX_KEEP)
        check_int("sample-count", self.sample_count, 1, MAX_SAMPLE_COUNT)
        check_int("grid-classes", self.grid_classes, 1, MAX_SAMPLE_COUNT // 8)
        check_int("eval-every", self.eval_every, 0, MAX_COUNT, "0 (off) or ")
        check_int("eval-num", self.eval_num, 1, MAX_EVAL_NUM)
        if not isinstance(self.eval_metrics, str):
            raise UsageError(f"--eval-metrics must be a string, got {show(self.eval_metrics)}")
        check_seed(self.seed)
        for name in ("lr_g", "lr_d"):
            check_real(name.replace("_", "-"), getattr(self, name), 0, MAX_LR, low_open=True)
        for name in ("beta1", "beta2", "ema_decay"):
            check_real(name.replace("_", "-"), getattr(self, name), 0, 1, high_open=True)
        check_real("gp-weight", self.gp_weight, 0, MAX_GP_WEIGHT)
        check_choice("on-divergence", self.on_divergence, DIVERGENCE_ACTIONS)
        check_int("max-rollbacks", self.max_rollbacks, 0, MAX_ROLLBACKS)
        check_choice("recipe", self.recipe, RECIPES)
        if not isinstance(self.augment, str):
            raise UsageError(f"--augment must be a string of transforms, got {self.augment!r}")
        names = [p.strip() for p in self.augment.split(",") if p.strip()]
        if any(n not in AUGMENTATIONS for n in names) or len(set(names)) != len(names):
            raise UsageError(
                f"--augment {self.augment!r} must be a comma-separated subset of "
                f"{', '.join(AUGMENTATIONS)} (or none)"
            )
        if not (isinstance(self.r1_gamma, (int, float)) and 0 <= self.r1_gamma < 1e6):
            raise UsageError(f"--r1 must be 0 (off) or a positive number, got {self.r1_gamma}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        # a RunConfig is always complete: the fields its parts leave as None are the recipe's
        # (`resolve`), so `RunConfig()` is exactly what `dcgan train` trains on the digits
        model, train = resolve(self.model, self.data, self.train)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "train", train)

    def validate(self) -> RunConfig:
        """Check the type and range of every field; a bad one is a UsageError saying what is
        allowed. Returns self, so `RunConfig(...).validate()` reads as one expression."""
        if self.schema_version != SCHEMA_VERSION:
            raise UsageError(
                f"config schema version {show(self.schema_version)} is not supported "
                f"(expected {SCHEMA_VERSION})"
            )
        for part, cls in _PARTS.items():
            if not isinstance(getattr(self, part), cls):
                raise UsageError(f"config is malformed: {part} is not a {cls.__name__}")
        self.model.validate()
        self.data.validate()
        self.train.validate()
        if self.train.engine == "numpy":
            check_numpy_engine(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> RunConfig:
        """The one way a config is built from JSON (config.json, a checkpoint's metadata): any
        JSON value in, a validated RunConfig out, or a one-line UsageError. Unknown keys are
        ignored so newer configs still load; missing ones take their defaults."""
        if not isinstance(d, dict):
            raise UsageError(f"config is malformed: expected a JSON object, got {kind_of(d)}")
        config = cls(
            model=_build(ModelConfig, d.get("model"), "model"),
            data=_build(DataConfig, d.get("data"), "data"),
            train=_build(TrainConfig, d.get("train"), "train"),
            schema_version=d.get("schema_version"),
        ).validate()
        if config.model.conditional and not config.model.class_names:  # (filled in at training)
            raise UsageError("config is malformed: a conditional model without class names")
        return config


_PARTS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}

# Upper limits that keep one value from asking for absurd memory or time; the memory a
# configuration needs as a whole is estimated in limits.py.
MLP_SIZE_RANGE = (4, 256)
MAX_LATENT_DIM = 4096
MAX_FEATURES = 4096
MAX_BATCH = 65536
MAX_COUNT = 10**9  # epochs, steps and cadences
MAX_N_CRITIC = 100
MAX_KEEP = 10_000
MAX_SAMPLE_COUNT = 4096
MAX_CLASSES = 10_000  # an embedding row per class in G and D
MAX_EVAL_NUM = 1_000_000
MAX_LR = 1.0  # Adam's step is about lr per weight: above 1 nothing can train
MAX_GP_WEIGHT = 1e6
MAX_ROLLBACKS = 100


def _build(cls, d: Any, part: str):
    """A dataclass from a JSON object, ignoring unknown keys so newer configs still load. A
    stored config is complete: a null where the recipe decides is malformed, not a choice."""
    if not isinstance(d, dict):
        raise UsageError(f"config is malformed: {part} must be a JSON object, got {kind_of(d)}")
    for name in (*PAPER_MODEL, "image_size", *PAPER_TRAIN):
        if name in d and d[name] is None:
            raise UsageError(f"config is malformed: {part}.{name} is null")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
