"""The engine contract: every engine module provides every function of `engines.Engine`, and the
registry hands out the module by name."""

from __future__ import annotations

import inspect

import pytest

from dcgan.config import ENGINES
from dcgan.engines import Engine, get_engine
from dcgan.errors import UsageError

CONTRACT = sorted(
    name for name, value in vars(Engine).items() if inspect.isfunction(value) and name[0] != "_"
)


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_provides_the_whole_contract(name):
    engine = get_engine(name)
    assert engine.name == name
    missing = [f for f in CONTRACT if not callable(getattr(engine, f, None))]
    assert not missing, f"{engine.__name__} lacks {missing}"
    assert {"create_state", "train_step", "generate", "score", "load_models"} <= set(CONTRACT)


def test_an_unknown_engine_is_a_usage_error():
    with pytest.raises(UsageError, match="--engine jax is not one of torch, numpy"):
        get_engine("jax")
