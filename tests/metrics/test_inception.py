"""The FID Inception path end to end with RANDOM weights (numbers not comparable to published
FID): shapes, batching, resize, weights lookup order, hash check, download and offline error.
Nothing here reaches the internet: only local files and a 127.0.0.1 HTTP server."""

import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest
import torch

from dcgan.errors import DcganError
from dcgan.metrics import Evaluator
from dcgan.metrics import inception as inc
from dcgan.metrics.frechet import FeatureStats
from dcgan.metrics.inception_net import resize_bilinear_tf1


@pytest.fixture(scope="module")
def model():
    return inc.load_inception(inc.RANDOM)


@pytest.fixture
def homes(tmp_path, monkeypatch):
    monkeypatch.setenv("DCGAN_HOME", str(tmp_path / "dcgan"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def fake_weights(path, content=b"not really inception"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def test_features_shapes_batching_and_gray(model):
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    pool, logits = inc.inception_features(x, model, batch_size=2)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008)
    assert pool.dtype == np.float32 and np.isfinite(pool).all() and pool.std() > 0
    pool2, _ = inc.inception_features(x, model, batch_size=1)
    np.testing.assert_allclose(pool2, pool, rtol=1e-4, atol=1e-5)
    rgb, _ = inc.inception_features(np.repeat(x[:1], 3, axis=1), model)
    np.testing.assert_allclose(rgb, pool[:1], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError):
        inc.inception_features(x.astype(np.float32), model)


def test_resize_is_tf1_bilinear():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(resize_bilinear_tf1(x, 4), x)
    y = resize_bilinear_tf1(x, 8)
    # TF1 (no half-pixel centres): output i samples input i * 4/8, clamped at the edge
    assert y[0, 0, 0, 1].item() == pytest.approx(0.5)
    assert y[0, 0, 1, 0].item() == pytest.approx(2.0)
    assert y[0, 0, 7, 7].item() == pytest.approx(15.0)


def test_lookup_order(homes):
    sha = fake_weights(homes / "torch" / "hub" / "checkpoints" / inc.ALT_WEIGHTS_NAMES[0])
    assert inc.find_weights(sha256=sha, download=False).name == inc.ALT_WEIGHTS_NAMES[0]
    fake_weights(homes / "torch" / "hub" / "checkpoints" / inc.WEIGHTS_NAME)
    assert inc.find_weights(sha256=sha, download=False).parent.parent.parent == homes / "torch"
    fake_weights(homes / "dcgan" / inc.WEIGHTS_NAME)
    assert inc.find_weights(sha256=sha, download=False) == homes / "dcgan" / inc.WEIGHTS_NAME
    explicit = homes / "elsewhere.pth"
    fake_weights(explicit)
    assert inc.find_weights(explicit, sha256=sha) == explicit
    with pytest.raises(DcganError, match="does not exist"):
        inc.find_weights(homes / "missing.pth", sha256=sha)


def test_hash_mismatch_is_refused(homes):
    fake_weights(homes / "dcgan" / inc.WEIGHTS_NAME, b"truncated")
    with pytest.raises(DcganError, match=inc.FID_WEIGHTS_SHA256):
        inc.find_weights(download=False)


def test_offline_error_is_one_line_with_url_hash_and_path(homes):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pt_inception.pth"
    with pytest.raises(DcganError) as e:
        inc.find_weights(url=url, timeout=5)
    msg = str(e.value)
    dest = homes / "torch" / "hub" / "checkpoints" / inc.WEIGHTS_NAME
    assert "\n" not in msg and url in msg and inc.FID_WEIGHTS_SHA256 in msg and str(dest) in msg
    assert not any(dest.parent.iterdir())  # no half file left behind


@pytest.fixture
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        body = b""

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield Handler, f"http://127.0.0.1:{httpd.server_address[1]}/w.pth"
    httpd.shutdown()


def test_download_verifies_then_renames(homes, server):
    handler, url = server
    handler.body = b"weights bytes" * 1000
    sha = hashlib.sha256(handler.body).hexdigest()
    dest = homes / "torch" / "hub" / "checkpoints" / inc.WEIGHTS_NAME
    with pytest.raises(DcganError, match="download failed"):
        inc.find_weights(url=url, sha256="0" * 64)
    assert list(dest.parent.iterdir()) == []
    assert inc.find_weights(url=url, sha256=sha) == dest
    assert dest.read_bytes() == handler.body


def test_load_state_dict_file_with_weights_only(tmp_path, model):
    path = tmp_path / "random_inception.pth"
    torch.save(model.state_dict(), path)
    loaded = inc.load_inception(path, sha256=inc.sha256_file(path))
    assert not loaded.random_weights
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_fid_refuses_fewer_than_2048_samples():
    feats = np.random.default_rng(2).standard_normal((100, 8))
    with pytest.raises(DcganError, match="at least 2048"):
        inc.fid_from_features(feats, FeatureStats.of(feats))


def test_inception_score_extremes():
    assert inc.inception_score(np.zeros((100, 1008)))[0] == pytest.approx(1.0)
    confident = np.eye(1008)[np.arange(100) % 10] * 50  # ten equally used, certain classes
    assert inc.inception_score(confident, splits=1)[0] == pytest.approx(10, rel=1e-3)


def test_evaluator_kid_is_with_random_weights_and_cached_reference(homes):
    rng = np.random.default_rng(3)
    real = rng.integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    fake = rng.integers(0, 256, (2, 1, 28, 28), dtype=np.uint8)
    ev = Evaluator(real, ("kid", "is"), inception_weights=inc.RANDOM, cache_dir=homes / "c")
    assert not ev.inception_ref.from_cache
    out = ev(fake)
    assert set(out) == {
        "kid_randominit",
        "kid_std_randominit",
        "is_randominit",
        "is_std_randominit",
    }
    assert all(np.isfinite(v) for v in out.values())
    again = Evaluator(real, ("kid",), inception_weights=inc.RANDOM, cache_dir=homes / "c")
    assert again.inception_ref.from_cache
    np.testing.assert_array_equal(again.inception_ref.features, ev.inception_ref.features)
    with pytest.raises(DcganError, match="2048"):
        Evaluator(real, ("fid",), inception_weights=inc.RANDOM, cache_dir=homes / "c")
