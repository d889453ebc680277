"""dcgan: train deep convolutional GANs (Radford, Metz & Chintala 2015) and generate from them.

The library entry point is `dcgan.train(config, ...)` (see `dcgan.session`); the `dcgan` command
only parses its options and calls it. `dcgan.train(RunConfig())` trains exactly what `dcgan train`
trains: the recipe (`dcgan.config.resolve`) fills every field a config leaves open.
"""

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig
from .session import Callbacks, TrainResult, train
from .version import __version__

__all__ = [
    "Callbacks",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "train",
]
