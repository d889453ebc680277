"""The prepared cache's writer: atomic, and a signal while it is being filled leaves nothing."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from dcgan.errors import DataError
from dcgan.prepared import (
    PreparationInterrupted,
    PreparedWriter,
    interruptible,
    read_prepared,
    signals_held,
)


def test_commit_is_all_or_nothing(tmp_path):
    cache = tmp_path / "prepared" / "x-1"
    with PreparedWriter(cache, 4, (1, 8, 8)) as out:
        out.images[:] = 7
        assert read_prepared(cache) is None  # nothing visible before the commit
        data = out.commit("x", {"kind": "test"})
    assert data.images.shape == (4, 1, 8, 8) and read_prepared(cache) is not None
    assert [p.name for p in cache.parent.iterdir()] == ["x-1"]


def test_labels_and_class_names_round_trip_through_the_cache(tmp_path):
    cache = tmp_path / "prepared" / "x-1"
    with PreparedWriter(cache, 3, (1, 4, 4)) as out:
        made = out.commit("x", {}, labels=np.array([1, 0, 1], np.uint8), class_names=["n", "y"])
    back = read_prepared(cache)
    assert made.class_names == back.class_names == ("n", "y") and back.num_classes == 2
    assert back.labels.dtype == np.int64 and back.labels.tolist() == [1, 0, 1]
    assert back.unlabelled_reason is None
    meta = json.loads((cache / "meta.json").read_text())
    meta["class_names"] = ["n"]  # labels outside the names: not a cache to trust
    (cache / "meta.json").write_text(json.dumps(meta))
    assert read_prepared(cache) is None
    plain = tmp_path / "prepared" / "y-1"
    with PreparedWriter(plain, 2, (1, 4, 4)) as out:
        out.commit("y", {}, unlabelled="a folder with 2 loose images and no class subfolders")
    back = read_prepared(plain)
    assert back.labels is None and back.class_names is None and back.num_classes is None
    assert back.unlabelled_reason == "a folder with 2 loose images and no class subfolders"
    with pytest.raises(DataError, match="z: labels outside its 2 classes"):
        with PreparedWriter(tmp_path / "prepared" / "z-1", 2, (1, 4, 4)) as out:
            out.commit("z", {}, labels=np.array([0, 2]), class_names=["a", "b"])
    assert not (tmp_path / "prepared" / "z-1").exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_filling_removes_the_partial_cache(tmp_path, signum):
    cache = tmp_path / "prepared" / "x-1"
    before = signal.getsignal(signum)
    with pytest.raises(PreparationInterrupted) as e:
        with interruptible("x train"), PreparedWriter(cache, 4, (1, 8, 8)) as out:
            out.images[:2] = 1
            os.kill(os.getpid(), signum)
            for _ in range(1000):  # the handler runs between bytecodes
                np.zeros(1)
            pytest.fail("the signal did not interrupt")
    assert e.value.exit_code == 128 + signum
    assert f"{signal.Signals(signum).name} while preparing x train" in str(e.value)
    assert list(cache.parent.iterdir()) == []
    assert signal.getsignal(signum) == before  # the caller's handler is back


def test_a_signal_inside_signals_held_is_raised_at_its_end_not_inside():
    reached = []
    with pytest.raises(PreparationInterrupted) as caught:
        with interruptible("the set"):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                reached.append("after the signal, inside")  # not cut short
                os.kill(os.getpid(), signal.SIGINT)  # a second one is held as well
                reached.append("end of the block")
            reached.append("after the block")  # never: the held signal is raised first
    assert reached == ["after the signal, inside", "end of the block"]
    assert caught.value.exit_code == 128 + signal.SIGTERM  # the first signal is the one raised
    assert "SIGTERM while preparing the set" in str(caught.value)


def test_a_held_signal_wins_over_the_error_it_caused_inside_the_block():
    # Ctrl-C reaches a worker too, which breaks the pool the held block submits to: the user
    # must see the signal (one line, exit 130), not the pool's error as a traceback
    with pytest.raises(PreparationInterrupted) as caught:
        with interruptible("the set"):
            with signals_held():
                os.kill(os.getpid(), signal.SIGINT)
                raise RuntimeError("the pool broke because a worker got the Ctrl-C too")
    assert caught.value.exit_code == 128 + signal.SIGINT
    assert "SIGINT while preparing the set" in str(caught.value)


def test_an_error_inside_signals_held_without_a_signal_is_the_error():
    with pytest.raises(RuntimeError, match="a real failure"):
        with interruptible("the set"):
            with signals_held():
                raise RuntimeError("a real failure")
