"""The download path against a local HTTP server serving the real MNIST files, and offline use."""

from __future__ import annotations

import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED
from dcgan.downloads import MIRROR_ENV, RemoteFile, ensure_files
from dcgan.errors import DataError
from dcgan.standard_sets import load_standard

MNIST_DIR = SHARED / "mnist"
TEST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / TEST_FILES[0]).is_file():
        pytest.skip(f"real MNIST files not found at {MNIST_DIR}")
    return MNIST_DIR


@pytest.fixture
def local_only(monkeypatch):
    """Any connection except to 127.0.0.1 fails, so the official URLs are never reached."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        if address[0] not in ("127.0.0.1", "localhost"):
            raise OSError("network blocked by the test")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def server(mnist_dir, local_only, monkeypatch):
    """Serves /mnist/<file> from the shared folder; `mode` picks good, truncate or corrupt."""
    state = {"mode": "good", "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            state["hits"] += 1
            path = mnist_dir / Path(self.path).name
            if not path.is_file():
                self.send_error(404)
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state["mode"] == "truncate":
                self.wfile.write(body[: len(body) // 2])  # then close: a cut connection
                self.close_connection = True
            elif state["mode"] == "corrupt":
                self.wfile.write(body[:-1] + bytes([body[-1] ^ 1]))
            else:
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.delenv("DCGAN_OFFLINE", raising=False)
    yield state
    httpd.shutdown()
    httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_then_offline(server, tmp_path, monkeypatch):
    data = load_standard("mnist", "test", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert data.images.shape == (10000, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(data.images.mean() / 255 - 0.1325) < 1e-3
    assert isinstance(data.images, np.memmap)  # the prepared cache is memory-mapped
    assert _leftovers(tmp_path / "d" / "mnist") == sorted(TEST_FILES)

    # now no network at all: the prepared cache is used, then the verified raw files
    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    again = load_standard("mnist", "test", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert again.from_cache and np.array_equal(again.images, data.images)
    padded = load_standard("mnist", "test", 32, data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert padded.images.shape[2:] == (32, 32)
    assert np.array_equal(padded.images[:, :, 2:30, 2:30], data.images)


@pytest.mark.parametrize("mode", ["truncate", "corrupt"])
def test_bad_download_is_never_kept(server, tmp_path, mode):
    server["mode"] = mode
    folder = tmp_path / "d" / "mnist"
    with pytest.raises(DataError) as e:
        load_standard("mnist", "test", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    message = str(e.value)
    assert "\n" not in message
    assert "t10k-images-idx3-ubyte.gz" in message and str(folder) in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz" in message
    assert ("truncated" if mode == "truncate" else "md5 mismatch") in message
    assert _leftovers(folder) == []  # no half file, no .part file
    assert not (tmp_path / "c" / "prepared").exists() or not any(
        (tmp_path / "c" / "prepared").iterdir()
    )


def test_connection_refused(local_only, tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{port}")
    remote = RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")
    with pytest.raises(DataError, match="refused") as e:
        ensure_files("mnist", [remote], tmp_path / "d")
    assert "\n" not in str(e.value) and f"put them in {tmp_path / 'd'}" in str(e.value)
    assert _leftovers(tmp_path / "d") == []


def test_corrupt_file_on_disk_is_replaced(server, tmp_path):
    folder = tmp_path / "d" / "mnist"
    folder.mkdir(parents=True)
    (folder / TEST_FILES[1]).write_bytes(b"not the labels")
    load_standard("mnist", "test", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert (folder / (TEST_FILES[1] + ".corrupt")).read_bytes() == b"not the labels"
    assert (folder / TEST_FILES[1]).read_bytes() == (MNIST_DIR / TEST_FILES[1]).read_bytes()


def test_placed_files_train_images_missing(mnist_dir, tmp_path, monkeypatch):
    """The shared folder has the test split and the train labels: the test split works offline,
    the train split names the one missing file, its URLs and the folder."""
    folder = tmp_path / "d" / "mnist"
    shutil.copytree(mnist_dir, folder, ignore=shutil.ignore_patterns("*.md", "MD5SUMS"))
    monkeypatch.setenv("DCGAN_OFFLINE", "1")
    data = load_standard("mnist", "test", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    assert len(data) == 10000
    with pytest.raises(DataError) as e:
        load_standard("mnist", "train", data_dir=tmp_path / "d", cache_dir=tmp_path / "c")
    message = str(e.value)
    assert "missing train-images-idx3-ubyte.gz (" in message and "labels" not in message
    assert str(folder) in message and "yann.lecun.com" in message and "\n" not in message
