"""The generator artefact and the ONNX / TorchScript exports, each run in its own runtime and
checked against what `dcgan generate` writes for the same latents."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, run_dcgan
from dcgan import artefact, export, files, rundir, sampling
from dcgan import checkpoint as ckpt
from dcgan.cli import main
from dcgan.errors import CheckpointError, UsageError
from fake_runs import make_run, model_config, to_uint8, torch_generator

CPU = torch.device("cpu")
README = Path(__file__).resolve().parents[1] / "README.md"
CASES = [(kind, size) for kind in ("dcgan", "mlp") for size in (28, 32, 64)]


def _ids(case):
    return f"{case[0]}{case[1]}"


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the generator artefact


def test_generator_folder_holds_the_ema_generator_only(run):
    folder = export.write_generator(run)
    assert folder == run / "generator"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    from safetensors.numpy import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    arrays, _ = ckpt.read_checkpoint(rundir.find_checkpoint(run))
    ema = ckpt.subset(arrays, "generator_ema")
    assert tensors.keys() == ema.keys()  # plain state-dict keys: no D, no optimizer, no prefix
    assert all(np.array_equal(tensors[k], ema[k]) for k in ema)
    info = json.loads((folder / "config.json").read_text())
    assert info["format"] == "dcgan-generator" and info["ema"] and info["step"] == 7
    assert info["latent_dim"] == 8 and info["output_range"] == [-1, 1]
    # usable without dcgan's loaders: the state dict loads into the model class directly
    g = torch_generator(run)
    from dcgan.models import DCGANGenerator

    plain = DCGANGenerator(model_config()).eval()
    plain.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    z = torch.randn(4, 8)
    assert torch.equal(plain(z), g(z))
    # smaller than the checkpoint (which holds G, G_ema and D here; a real one also Adam moments)
    full = rundir.find_checkpoint(run).stat().st_size
    assert (folder / "model.safetensors").stat().st_size < full / 2


def test_no_ema_copies_the_generator(tmp_path):
    run = make_run(tmp_path, ema=False)
    folder = export.write_generator(run, tmp_path / "g")
    assert not json.loads((folder / "config.json").read_text())["ema"]
    z = torch.randn(3, 8)
    s = sampling.load_sampler(folder, CPU)
    torch.testing.assert_close(s.generator(z), torch_generator(run, "generator")(z))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_generate_reads_the_generator_folder(run, engine, capsys):
    export.write_generator(run)
    from_run, from_folder = run.parent / "a", run.parent / "b"
    common = ["--num", 6, "--seed", 3, "--engine", engine]
    assert _cli(capsys, "generate", run, "--out", from_run, *common)[0] == 0
    assert _cli(capsys, "generate", run / "generator", "--out", from_folder, *common)[0] == 0
    for i in range(6):
        a, b = (np.asarray(Image.open(d / f"{i:05d}.png")) for d in (from_run, from_folder))
        assert np.array_equal(a, b)
    # the folder has no discriminator: --nice says so in one line
    code, err = _cli(capsys, "generate", run / "generator", "--nice", 0.5, "--engine", engine)
    assert code == 2 and "generator folder without one" in err and len(err.splitlines()) == 1


def test_a_run_without_checkpoints_samples_from_its_generator_folder(run, capsys):
    export.write_generator(run)
    for f in rundir.list_checkpoints(run):
        f.unlink()
    code, err = _cli(capsys, "generate", run, "--num", 2)
    assert code == 0 and (run / "generated" / "step7-sample-seed0" / "00001.png").is_file()


def test_write_generator_replaces_the_folder_whole(run):
    folder = export.write_generator(run)
    (folder / "stale.txt").write_text("x")
    export.write_generator(run)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_non_finite_weights_are_one_line_errors(tmp_path, capsys):
    run = make_run(tmp_path)
    path = rundir.find_checkpoint(run)
    arrays, meta = ckpt.read_checkpoint(path)
    arrays["generator_ema.main.0.weight"][0, 0, 0, 0] = np.nan
    ckpt.write_checkpoint(path, arrays, meta)
    with pytest.raises(CheckpointError, match="non-finite weights in generator_ema"):
        artefact.load(run)
    for command in (
        ["generate", run],
        ["generate", run, "--engine", "numpy"],
        ["eval", run, "--metrics", "swd", "--num", 32],  # swd needs 32 (issue 15)
        ["export", run, "--format", "onnx"],
    ):
        code, err = _cli(capsys, *command)
        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "non-finite weights" in err and "diverged" in err


# ---------------------------------------------------------------------------------------------
# ONNX and TorchScript, in their own runtimes

# Tolerances. Both runtimes evaluate the same fp32 graph with differently ordered sums
# (onnxruntime's MLAS convolutions, oneDNN's NHWC kernels in `generate`, the reference NCHW
# module). An fp32 sum of K terms of size ~1 differs by at most ~K * 2^-24 between orders; the
# widest sum here (the MLP's 128 -> 4096 layer, or a 64 px transposed convolution's 4 * 32
# inputs) has K < 2^10, so pre-tanh values agree to ~1e-4 at worst and tanh only shrinks
# differences: 1e-4 absolute on [-1, 1] is safe and still catches any real mistake (a dropped
# BatchNorm or a transposed layout is off by >= 1e-2). On uint8 images that means a value can
# move by one level where (x + 1) * 127.5 lies within ~0.01 of a rounding boundary: at most 1,
# and in well under 1% of the pixels.
FLOAT_ATOL = 1e-4
FLIPPED_SHARE = 0.01


def _reference(run, z):
    """(the float output of G, the uint8 images `dcgan generate` writes) for latents z."""
    with torch.no_grad():
        x = torch_generator(run)(torch.from_numpy(z)).numpy()
    return x, sampling.from_latents(sampling.load_sampler(run, CPU), z)


def _assert_matches(x, run, z):
    x_ref, images = _reference(run, z)
    assert x.shape == x_ref.shape and x.dtype == np.float32
    np.testing.assert_allclose(x, x_ref, atol=FLOAT_ATOL, rtol=0)
    diff = np.abs(to_uint8(x).astype(int) - images.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < FLIPPED_SHARE


def _latents(n=12, dim=8, seed=0):
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_onnx_in_onnxruntime_matches_generate(tmp_path, case):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is absent")
    kind, size = case
    run = make_run(tmp_path, model_config(kind, size, channels=3 if size == 32 else 1))
    path = export.export(run, "onnx")
    assert path == run / "generator.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name, inp.shape[1], inp.type) == ("z", "images", 8, "tensor(float)")
    for n in (1, 12):  # a dynamic batch
        z = _latents(n)
        _assert_matches(session.run(None, {"z": z})[0], run, z)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["output_range"] == "[-1, 1]" and meta["layout"] == "NCHW"
    assert meta["latent_dim"] == "8" and meta["image_size"] == str(size)
    assert meta["channels"] == ("RGB" if size == 32 else "gray")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_torchscript_in_torch_jit_matches_generate(tmp_path, case):
    kind, size = case
    run = make_run(tmp_path, model_config(kind, size, channels=3 if size == 32 else 1))
    path = export.export(run, "torchscript")
    extra = {"dcgan.json": ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    for n in (1, 12):
        z = _latents(n)
        with torch.no_grad():
            _assert_matches(module(torch.from_numpy(z)).numpy(), run, z)
    meta = json.loads(extra["dcgan.json"])
    assert meta["output_range"] == "[-1, 1]" and meta["latent_dim"] == "8"
    with pytest.raises(Exception, match="z must be"):
        module(torch.zeros(2, 9))


def test_fixed_batch(run):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is absent")
    session = ort.InferenceSession(str(export.export(run, "onnx", batch=4)))
    assert session.get_inputs()[0].shape == [4, 8]
    assert session.run(None, {"z": _latents(4)})[0].shape == (4, 1, 28, 28)
    with pytest.raises(Exception):  # noqa: B017 (onnxruntime's own error type)
        session.run(None, {"z": _latents(3)})
    module = torch.jit.load(str(export.export(run, "torchscript", batch=4)))
    assert module(torch.zeros(4, 8)).shape == (4, 1, 28, 28)
    with pytest.raises(Exception, match="fixed batch"):
        module(torch.zeros(3, 8))


def test_export_from_a_generator_folder(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is absent")
    run = make_run(tmp_path)
    folder = export.write_generator(run, tmp_path / "shipped")
    out = export.export(folder, "torchscript", tmp_path / "g.pt")
    z = _latents(5)
    _assert_matches(torch.jit.load(str(out))(torch.from_numpy(z)).detach().numpy(), run, z)


# ---------------------------------------------------------------------------------------------
# the command line: bad input is one line, a non-zero exit, and overwrites nothing


def test_export_bad_input(tmp_path, capsys):
    run = make_run(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    files.write_json(empty / "config.json", json.loads((run / "config.json").read_text()))
    code, err = _cli(capsys, "export", empty, "--format", "onnx")
    assert code == 1 and "has no checkpoint" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main(["export", str(run), "--format", "keras"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
    for fmt, out in (("torchscript", run / "generator.torchscript.pt"), ("safetensors", None)):
        assert _cli(capsys, "export", run, "--format", fmt)[0] == 0
        target = out or run / "generator" / "model.safetensors"
        before = target.read_bytes()
        code, err = _cli(capsys, "export", run, "--format", fmt)
        assert code == 2 and "exists; pass --force" in err and len(err.splitlines()) == 1
        assert target.read_bytes() == before
        assert _cli(capsys, "export", run, "--format", fmt, "--force")[0] == 0
    code, err = _cli(capsys, "export", run, "--format", "safetensors", "--batch", "4", "--force")
    assert code == 2 and "--batch is for" in err
    with pytest.raises(SystemExit):
        main(["export", str(run), "--format", "onnx", "--batch", "0"])
    assert "dynamic" in capsys.readouterr().err


def test_missing_onnx_extra_is_one_line(tmp_path):
    run = make_run(tmp_path)
    code = (
        "import sys; sys.modules['onnxscript'] = None\n"
        "from dcgan.cli import main\n"
        f"sys.exit(main(['export', {str(run)!r}, '--format', 'onnx']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert_one_line_error(proc, 1, "pip install 'dcgan[onnx]'")
    assert not (run / "generator.onnx").exists()


def test_export_cli_onnx_matches_generate_pngs(tmp_path):
    """The user's path end to end: `dcgan export`, then onnxruntime against `dcgan generate
    --latents` on the same latents."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is absent")
    run = make_run(tmp_path, model_config("dcgan", 32, channels=3))
    proc = run_dcgan("export", run, "--format", "onnx", "--out", tmp_path / "g.onnx", cwd=tmp_path)
    assert re.fullmatch(r"wrote \S+g\.onnx \(\d+\.\d\d MB\)\n", proc.stderr), proc.stderr
    z = _latents(6)
    np.save(tmp_path / "z.npy", z)
    run_dcgan(
        "generate", run, "--latents", tmp_path / "z.npy", "--out", tmp_path / "png", cwd=tmp_path
    )
    x = ort.InferenceSession(str(tmp_path / "g.onnx")).run(None, {"z": z})[0]
    for i, image in enumerate(to_uint8(x)):
        png = np.asarray(Image.open(tmp_path / "png" / f"{i:05d}.png")).transpose(2, 0, 1)
        assert np.abs(png.astype(int) - image).max() <= 1


def _readme_snippet() -> str:
    text = README.read_text()
    m = re.search(r"<!-- onnx-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README lost its onnxruntime example"
    return m.group(1)


def test_readme_onnx_example_runs_without_dcgan(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime (the onnx extra) is absent")
    snippet = _readme_snippet()
    assert len(snippet.strip().splitlines()) <= 15
    snippet = snippet.replace("runs/digits-dcgan28/generator.onnx", "generator.onnx")
    run = make_run(tmp_path)
    export.export(run, "onnx", tmp_path / "generator.onnx")
    # dcgan made unimportable: the example needs onnxruntime, NumPy and Pillow only
    blocker = "import sys; sys.modules['dcgan'] = None\n"
    proc = subprocess.run(
        [sys.executable, "-c", blocker + snippet], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (8 * 28, 8 * 28)
    # its latents are `dcgan generate --seed 0`'s: the first tile is generate's first image
    first = sampling.sample(sampling.load_sampler(run, CPU), 1, seed=0)[0, 0]
    assert np.abs(grid[:28, :28].astype(int) - first).max() <= 1


def test_export_imports_no_torch_until_it_exports():
    code = "import sys, dcgan.export, dcgan.artefact; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


def test_usage_errors_are_raised_before_loading(run):
    with pytest.raises(UsageError, match="not one of"):
        export.export(run, "tflite")
