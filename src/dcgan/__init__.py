"""dcgan: train deep convolutional GANs (Radford, Metz & Chintala 2015) and generate from them.

The library entry point is `dcgan.train(config, ...)` (see `dcgan.runner`); the `dcgan` command
only parses its options and calls it.
"""

__version__ = "0.1.0"

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from .runner import Callbacks, TrainResult, train  # noqa: E402

__all__ = [
    "Callbacks",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "train",
]
