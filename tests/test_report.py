"""`dcgan report`: the page's content from a tiny real run, several runs side by side, the missing
extra, and the page in a real headless Chromium (no console errors, no network, images drawn),
whose screenshot is kept as a test artefact."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from browser import find_chromium, load_page
from conftest import run_dcgan
from dcgan.perf import amx_bf16

pytest.importorskip(
    "matplotlib", reason="the report needs the report extra: pip install -e '.[report]'"
)

TINY = ["--g-features", "8", "--d-features", "8", "--latent-dim", "16", "--batch-size", "16"]
TINY += ["--steps", "12", "--log-every", "2", "--sample-every", "4", "--no-progress"]
EVAL = ["--eval-every", "4", "--eval-num", "200", "--eval-metrics", "swd"]
ARTIFACTS = Path(
    os.environ.get("DCGAN_TEST_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Two tiny runs on the digits (one with --eval-every and a nice-mode output) and their cwd."""
    cwd = tmp_path_factory.mktemp("report")
    train = run_dcgan("train", "--name", "a", "--report-every", "8", *TINY, *EVAL, cwd=cwd)
    assert "report.html" in train.stderr.splitlines()[-1]
    run_dcgan("train", "--name", "b", "--lr", "0.001", *TINY, cwd=cwd)
    assert (cwd / "runs" / "b" / "report.html").is_file()  # training writes it at the end
    run_dcgan("generate", cwd / "runs" / "a", "--num", "16", "--nice", "0.5", "--grid", cwd=cwd)
    return cwd / "runs" / "a", cwd / "runs" / "b", cwd


def _images(page: str) -> list[tuple[str, str, bytes]]:
    """(class, alt, decoded bytes) of every <img> in the page."""
    import base64

    found = re.findall(r'<img class="(\w+)" alt="([^"]*)" src="data:[^;]+;base64,([^"]+)">', page)
    return [(cls, alt, base64.b64decode(data)) for cls, alt, data in found]


def test_report_of_one_run_is_self_contained_and_complete(runs):
    a, _, cwd = runs
    proc = run_dcgan("report", a, cwd=cwd)
    out = a / "report.html"
    assert f"wrote {out}" in proc.stderr.replace(str(cwd) + "/", "") or out.is_file()
    page = out.read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    images = _images(page)
    plots = {alt: data for cls, alt, data in images if cls == "plot"}
    assert {"Losses", "D(x) and D(G(z))", "Speed against step", "Speed against wall time"} <= set(
        plots
    )
    assert "swd over steps" in plots  # the metric, with the best checkpoint starred
    for alt, svg in plots.items():
        assert svg.startswith(b"<?xml") and b"<path" in svg and b"no data yet" not in svg, alt
    assert b"best checkpoint (step" in plots["swd over steps"]
    grids = [alt for cls, alt, _ in images if cls == "grid"]
    assert "final grid (step 12)" in grids and "progress.gif" in grids
    assert "real training images" in grids and "step 4" in grids
    assert any(alt.startswith("step12-nice0.5") for alt in grids)
    # the precision auto chose on this CPU
    precision = "auto (bf16)" if amx_bf16() else "auto (fp32)"
    for text in ("Checkpoints kept", "step_000000012.safetensors", "config.json", "bce", precision):
        assert text in page, text
    assert "skipped" in page  # the data source line says what it knows about skipped files


def test_report_of_several_runs_overlays_and_lists_differences(runs, tmp_path):
    a, b, cwd = runs
    out = tmp_path / "both.html"
    run_dcgan("report", a, b, "--out", out, cwd=cwd)
    page = out.read_text()
    assert "Config differences" in page and "train.lr_g" in page and "0.001" in page
    losses = dict((alt, data) for _, alt, data in _images(page))["Losses"]
    assert b"a D" in losses and b"b G" in losses  # both runs' series, labelled by run


def test_write_report_refreshes_in_place(runs, tmp_path):
    from dcgan.report import write_report

    a, _, _ = runs
    out = write_report([a], tmp_path / "r.html")
    first = out.read_text()
    assert write_report(a, out) == out and out.read_text() == first  # same data, same page
    assert oct(out.stat().st_mode & 0o777) == "0o644"


def test_missing_matplotlib_is_one_line_naming_the_extra(runs, monkeypatch, capsys):
    from dcgan.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["report", str(runs[0]), "--out", os.devnull]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'dcgan[report]'" in err[0]


def test_not_a_run_is_one_line(tmp_path):
    proc = run_dcgan("report", tmp_path, cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "not a dcgan run directory" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_report_in_a_real_browser(runs):
    """What a user sees: no console error, no request but the page and its data: URIs, every
    image decoded with a size, and a screenshot (test-artifacts/report.png) to look at."""
    if find_chromium() is None:
        if os.environ.get("DCGAN_REQUIRE_BROWSER"):
            pytest.fail("DCGAN_REQUIRE_BROWSER is set but no chromium is on PATH")
        pytest.skip("chromium not found (apt-get install chromium, or set DCGAN_CHROMIUM)")
    pytest.importorskip("websocket", reason="websocket-client is in the test extra")
    a, b, cwd = runs
    out = a / "report.html"
    run_dcgan("report", a, cwd=cwd)
    result = load_page(out)
    assert result.console_errors == []
    page_url = out.resolve().as_uri()
    assert [u for u in result.requests if u != page_url and not u.startswith("data:")] == []
    assert len(result.images) >= 10
    for image in result.images:
        assert image["complete"] and image["width"] > 50 and image["height"] > 50, image
    assert sum(i["cls"] == "plot" for i in result.images) >= 5
    assert "Training curves" in result.text and "Run a" in result.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.write_bytes(result.screenshot)
    from PIL import Image

    with Image.open(shot) as im:
        assert im.width == 1280 and im.height > 1500  # the whole page, not just the viewport
        colors = im.convert("L").getextrema()
    assert colors[0] < 50 and colors[1] > 200  # something drawn on the white page


@pytest.mark.parametrize(
    "flag, module, extra",
    [("--report-every", "matplotlib", "report"), ("--tensorboard", "tensorboard", "tensorboard")],
)
def test_a_view_asked_for_without_its_extra_fails_before_training(
    tmp_path, monkeypatch, capsys, flag, module, extra
):
    from dcgan.cli import main

    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setitem(sys.modules, f"{module}.figure", None)
    args = ["train", flag, *(["2"] if flag == "--report-every" else []), "--steps", "2"]
    assert main([*args, "--runs-dir", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"pip install 'dcgan[{extra}]'" in err[0]
    assert not (tmp_path / "runs").exists()  # nothing was made
