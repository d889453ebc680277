"""The framework-free engine: NumPy (or CuPy) ops, layers, models and Adam; imports no torch."""

from .models import Discriminator, Generator, build_models
from .optim import Adam

__all__ = ["Adam", "Discriminator", "Generator", "build_models"]
