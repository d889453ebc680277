"""Folder robustness: odd and broken files built in the test, the skipped report, parallel ==
serial, and random bytes never crashing preparation."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from dcgan.errors import DataError
from dcgan.folders import load_folder

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _jpeg_with_orientation(path, orientation: int) -> None:
    img = Image.new("RGB", (40, 20), BLUE)
    img.paste(RED, (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=95, exif=exif)


def _odd_folder(root):
    """Every odd case of the issue, with the expected outcome in the name."""
    root.mkdir()
    _jpeg_with_orientation(root / "exif_rotated.jpg", 6)  # displayed rotated 90 degrees CW
    Image.new("LA", (9, 9), (100, 50)).save(root / "la.png")
    Image.new("RGB", (9, 9), RED).convert("P").save(root / "palette.png")
    Image.fromarray(np.full((9, 9), 65535, np.uint16)).save(root / "sixteen.png")  # I;16
    Image.new("CMYK", (9, 9), (0, 255, 255, 0)).save(root / "cmyk.jpg")
    frames = [Image.new("RGB", (9, 9), c) for c in (RED, BLUE)]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    Image.new("RGB", (9, 9), RED).save(root / "été photo 1.png")  # unicode and spaces
    (root / "zero.png").write_bytes(b"")
    good = root / "exif_rotated.jpg"
    (root / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (root / "notes.jpg").write_text("this is not an image")
    Image.new("RGB", (100, 100)).save(root / "huge.png")  # a "bomb" once the limit is lowered
    os.symlink(root, root / "loop")  # a folder link back to its parent
    os.symlink(root / "b.png", root / "a.png")  # a file link loop
    os.symlink(root / "a.png", root / "b.png")
    os.symlink(root / "gone.png", root / "dangling.png")


def test_odd_files_are_converted_or_skipped_and_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 is over twice the limit
    folder = tmp_path / "odd"
    _odd_folder(folder)
    data = load_folder(folder, 8, cache_dir=tmp_path / "c", workers=1)
    skipped = {
        "a.png",
        "b.png",
        "dangling.png",
        "huge.png",
        "notes.jpg",
        "truncated.jpg",
        "zero.png",
    }
    assert set(data.skipped) == skipped
    assert len(data) == 7 and data.images.shape == (7, 3, 8, 8)
    names = ["anim.gif", "cmyk.jpg", "exif_rotated.jpg", "la.png", "palette.png", "sixteen.png"]
    images = dict(zip(names + ["été photo 1.png"], data.images))
    assert images["anim.gif"][0].min() > 200 and images["anim.gif"][2].max() < 50  # frame 0
    assert images["cmyk.jpg"][0].min() > 200 and images["cmyk.jpg"][1].max() < 60
    rotated = images["exif_rotated.jpg"]  # the red half is on top once EXIF is applied
    assert rotated[0, 0].mean() > 200 and rotated[0, -1].mean() < 60 and rotated[2, -1].mean() > 200
    assert images["la.png"].std() == 0 and images["sixteen.png"].min() == 255
    assert images["palette.png"][0].min() > 200
    report = (data.cache_path / "skipped.txt").read_text(encoding="utf-8")
    assert "decompression-bomb" in report and "UnidentifiedImageError" in report
    assert sum(not line.startswith("#") for line in report.splitlines()) == 7
    assert data.warnings and "memorise" in data.warnings[0]
    again = load_folder(folder, 8, cache_dir=tmp_path / "c", workers=1)
    assert again.from_cache and set(again.skipped) == skipped


def test_parallel_equals_serial(tmp_path, cifar_dir):
    folder = tmp_path / "mixed"
    for cls in ("cat", "ship"):
        (folder / cls).mkdir(parents=True)
        for i in range(30):
            src = cifar_dir / cls / f"{i:04d}.jpg"
            (folder / cls / src.name).write_bytes(src.read_bytes())
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    Image.new("L", (50, 70), 90).save(folder / "ship" / "gray_big.png")
    serial = load_folder(folder, 16, cache_dir=tmp_path / "s", workers=1)
    parallel = load_folder(folder, 16, cache_dir=tmp_path / "p", workers=2)
    assert not parallel.from_cache and len(serial) == 61
    assert np.array_equal(np.asarray(serial.images), np.asarray(parallel.images))
    assert serial.skipped == parallel.skipped == ["cat/broken.png"]


hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
    head=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM"]),
    body=st.binary(max_size=600),
    ext=st.sampled_from([".png", ".jpg"]),
)
def test_random_bytes_never_crash_preparation(tmp_path_factory, head, body, ext):
    folder = tmp_path_factory.mktemp("rand")
    (folder / f"x{ext}").write_bytes(head + body)
    Image.new("RGB", (4, 4), RED).save(folder / "ok.png")
    data = load_folder(folder, 4, cache_dir=folder / ".cache", workers=1)
    assert 1 <= len(data) <= 2 and len(data) + len(data.skipped) == 2


def test_workers_from_the_environment_and_a_dying_worker(tmp_path, monkeypatch, cifar_dir):
    import multiprocessing
    import os
    import signal

    from dcgan import folders
    from dcgan.errors import DataError

    monkeypatch.setenv("DCGAN_WORKERS", "3")
    assert folders.default_workers(10) == 3
    monkeypatch.setenv("DCGAN_WORKERS", "zero")
    with pytest.raises(DataError, match="DCGAN_WORKERS must be a positive integer"):
        folders.default_workers(10)
    monkeypatch.delenv("DCGAN_WORKERS")
    assert folders.default_workers(10) == 1  # small folders stay in this process

    # a helper process that dies (a decoder crash, the OOM killer) is a one-line data error;
    # fork, so the helpers inherit the patched decoder that kills any process but this one
    parent, decode = os.getpid(), folders.decode_image

    def decode_or_die(path, *args):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return decode(path, *args)

    monkeypatch.setattr(folders, "decode_image", decode_or_die)
    monkeypatch.setattr(folders, "_pool_context", lambda: multiprocessing.get_context("fork"))
    files = folders.scan_folder(cifar_dir / "cat")[0][:64]
    target = tmp_path / "out.npy"
    np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(64, 3, 8, 8)).flush()
    with pytest.raises(DataError, match="a decoding process died"):
        list(folders.decode_all(files, target, 8, None, workers=2))


def test_a_pool_broken_before_a_submit_is_the_same_one_line_error(tmp_path, monkeypatch, cifar_dir):
    # a worker can die between two submits: the next submit, not a result, then raises
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from dcgan import folders
    from dcgan.errors import DataError

    class BrokenOnSubmit(ProcessPoolExecutor):
        def submit(self, *args, **kwargs):
            raise BrokenProcessPool("A child process terminated abruptly")

    monkeypatch.setattr(folders, "ProcessPoolExecutor", BrokenOnSubmit)
    files = folders.scan_folder(cifar_dir / "cat")[0][:16]
    target = tmp_path / "out.npy"
    np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(16, 3, 8, 8)).flush()
    with pytest.raises(DataError, match="a decoding process died") as caught:
        list(folders.decode_all(files, target, 8, None, workers=2))
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------
# SIGTERM / SIGINT during decoding (issue 15): workers stopped, partial cache removed, one line


def _marked_pids(marker: str) -> set[int]:
    """Every live process whose environment holds `marker` (children, forkserver, resource
    tracker and workers inherit it, even after they are orphaned and reparented)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if marker.encode() in f.read():
                        found.add(int(entry))
            except OSError:
                continue
    return found


def _worker_that_waits(parent: int) -> None:
    from dcgan import folders

    folders._worker_start(parent)
    import time

    time.sleep(120)  # a worker waiting for work that never comes


def test_a_decoding_worker_ends_when_its_parent_ends():
    # a worker the pool never learnt about (a signal between its start and the executor's
    # bookkeeping) is not terminated by the parent: it must end by itself when dcgan ends
    import multiprocessing
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"])
    worker = multiprocessing.get_context("spawn").Process(
        target=_worker_that_waits, args=(parent.pid,)
    )
    worker.start()
    try:
        time.sleep(0.5)
        assert worker.is_alive()  # the parent lives: the worker keeps waiting
        # the parent ends and is not reaped yet (a zombie, as dcgan is while a caller still
        # reads its pipes): the worker must not wait for it to be reaped
        worker.join(timeout=15)
        assert not worker.is_alive(), "the worker outlived its parent"
        assert worker.exitcode == 1
    finally:
        if worker.is_alive():
            worker.kill()
        parent.wait()


_SIGINT_IN_A_FRESH_WORKER = """
import os, signal, sys
from concurrent.futures import ProcessPoolExecutor
from dcgan import folders

def sigint_ignored(_):
    with open(f"/proc/{os.getpid()}/status") as f:
        ignored = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn"))
    return bool(ignored & (1 << (signal.SIGINT - 1)))

if __name__ == "__main__":
    context = folders._pool_context()
    # no initializer: what the worker has from birth, before `_worker_start` could run
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        in_worker = pool.submit(sigint_ignored, 0).result()
    print(in_worker, sigint_ignored(0), signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc/PID/status")
def test_decoding_workers_ignore_ctrl_c_from_birth(tmp_path):
    # a Ctrl-C reaches the whole process group: a worker still starting up (before its
    # initializer) used to die of it and break the pool, so dcgan printed the pool's traceback
    # instead of the one-line "SIGINT while preparing" (seen in CI, ~1 run in 20)
    import multiprocessing
    import subprocess
    import sys

    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this platform")
    script = tmp_path / "probe.py"
    script.write_text(_SIGINT_IN_A_FRESH_WORKER)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # the worker ignores SIGINT; this process still handles it as Python does
    assert out.stdout.split() == ["True", "False", "True"]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="process listing via /proc")
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_a_signal_during_decoding_leaves_nothing_behind(tmp_path, signame):
    import signal
    import subprocess
    import sys
    import time
    import uuid

    folder = tmp_path / "big"
    folder.mkdir()
    # one large JPEG (~40 ms to decode and resize) hard-linked 1,200 times: seconds of decoding
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((2000, 2000, 3)) * 255).astype(np.uint8)).save(folder / "0.jpg")
    for i in range(1, 1200):  # the test stops it by a signal, so more costs no time
        os.link(folder / "0.jpg", folder / f"{i}.jpg")
    marker = f"DCGAN_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, "DCGAN_HOME": str(tmp_path / "home"), "DCGAN_WORKERS": "3"}
    env[marker.split("=")[0]] = marker.split("=")[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcgan", "data", "prepare", str(folder), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
    )
    prepared = tmp_path / "home" / "prepared"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        partial = list(prepared.glob(".big-*")) if prepared.is_dir() else []
        if partial and len(_marked_pids(marker)) >= 4:  # dcgan, tracker, forkserver, a worker
            break
        time.sleep(0.05)
    if proc.poll() is not None:  # say why: an early exit (an error) or decoding outran the loop
        out, err = proc.communicate()
        pytest.fail(
            f"dcgan data prepare ended before the signal (exit {proc.returncode}): "
            f"{err.strip()[-2000:] or out.strip()[-2000:]}"
        )
    if signame == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group
    else:
        proc.send_signal(signal.SIGTERM)  # `kill PID`: dcgan alone
    _, stderr = proc.communicate(timeout=60)
    number = getattr(signal, signame)
    assert proc.returncode == 128 + number, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"{signame} while preparing" in lines[0] and "removed the partial cache" in lines[0]
    assert list(prepared.iterdir()) == []  # no partial cache directory
    deadline = time.monotonic() + 10
    while _marked_pids(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _marked_pids(marker), "helper processes outlived dcgan"


def test_class_subfolders_label_the_kept_images(tmp_path):
    pets = tmp_path / "pets"
    for name, colour in (("dog", BLUE), ("cat", RED), ("cat/indoor", RED)):
        (pets / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (9, 9), colour).save(pets / name / f"{i}.png")
    (pets / "cat" / "1b.png").write_bytes(b"\x89PNG broken: skipped, in the middle of cat/")
    data = load_folder(pets, 8, cache_dir=tmp_path / "c", workers=1)
    assert data.skipped == ["cat/1b.png"] and len(data) == 9
    assert data.class_names == ("cat", "dog") and data.num_classes == 2  # sorted
    assert data.labels.tolist() == [0] * 6 + [1] * 3  # cat/indoor/ belongs to cat
    red = data.images[:, 0, 0, 0] == 255
    assert red.tolist() == (data.labels == 0).tolist()  # each label beside its own image
    again = load_folder(pets, 8, cache_dir=tmp_path / "c")
    assert again.from_cache and again.class_names == ("cat", "dog")
    assert np.array_equal(again.labels, data.labels)
    # a picture moved to a new class folder is a new labelling, hence a new cache
    (pets / "ant").mkdir()
    os.replace(pets / "dog" / "0.png", pets / "ant" / "0.png")
    moved = load_folder(pets, 8, cache_dir=tmp_path / "c")
    assert not moved.from_cache and moved.class_names == ("ant", "cat", "dog")
    assert moved.labels.tolist() == [0] + [1] * 6 + [2] * 2


def test_loose_images_beside_class_folders_are_unlabelled_and_say_so(image_folder, tmp_path):
    # conftest's folder: a/ and b/ with 12 pictures each, plus b/broken.jpg (skipped)
    Image.new("RGB", (9, 9), BLUE).save(image_folder / "loose.png")
    data = load_folder(image_folder, 16, cache_dir=tmp_path / "c")
    assert len(data) == 25 and data.labels is None and data.class_names is None
    assert data.unlabelled_reason == (
        "a folder with 1 loose images beside 2 subfolders (a, b); "
        "class subfolders need every image inside one"
    )


def test_class_subfolders_without_images_are_one_line_errors(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        (tmp_path / "pets" / name / "readme.txt").write_text("no pictures here")
    with pytest.raises(DataError) as e:
        load_folder(tmp_path / "pets", 16, cache_dir=tmp_path / "c")
    assert "nor in its 2 subfolders: cat, dog" in str(e.value) and "\n" not in str(e.value)
