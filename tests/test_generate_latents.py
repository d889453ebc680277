"""`generate` with latent files in and out, truncation, one image per seed, and output folders
that a rerun replaces; `eval --truncation`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dcgan import config, draw, latent_space
from dcgan.cli import main
from dcgan.errors import UsageError
from fake_runs import make_run


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path)


def _cli(capsys, *args) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, expected_code: int, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert code == expected_code and len(lines) == 1 and fragment in lines[0], err


def _png(path):
    return np.asarray(Image.open(path))


# ---------------------------------------------------------------------------------------------
# truncation


def test_truncated_latents_stay_inside_and_keep_what_was_inside():
    z = draw.latents(500, 64, seed=3)
    for psi in (0.1, 0.5, 1.0, 2.0):
        t = draw.truncated_latents(500, 64, 3, psi)
        assert t.dtype == np.float32 and t.shape == (500, 64)
        assert np.abs(t).max() <= np.float32(psi)
        inside = np.abs(z) <= psi
        assert np.array_equal(t[inside], z[inside])  # only the outliers are redrawn
        assert np.array_equal(t, draw.truncated_latents(500, 64, 3, psi))  # pure function
    assert np.array_equal(draw.truncated_latents(50, 64, 3, 40.0), z[:50])
    assert np.array_equal(draw.truncated_latents(50, 64, 3, None), z[:50])


def test_truncated_latents_are_prefix_stable():
    many = draw.truncated_latents(300, 16, 9, 0.7)
    for k in (1, 2, 17, 299):
        assert np.array_equal(draw.truncated_latents(k, 16, 9, 0.7), many[:k])


def test_truncated_latents_follow_the_truncated_normal():
    # N(0, 1) conditioned on |z| <= 1 has variance 1 - 2 phi(1) / (2 Phi(1) - 1) = 0.2911
    t = draw.truncated_latents(2000, 100, 0, 1.0).astype(np.float64)
    assert abs(t.mean()) < 0.01 and abs(t.var() - 0.2911) < 0.005
    # and its shape: P(0.5 < |z| < 1 | |z| <= 1) = (Phi(1) - Phi(0.5)) / (Phi(1) - 0.5) = 0.4391
    hist = np.histogram(t, bins=4, range=(-1, 1))[0] / t.size
    assert np.allclose(hist, [0.2196, 0.2804, 0.2804, 0.2196], atol=0.004)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_truncation_must_be_positive(bad):
    with pytest.raises(UsageError, match="--truncation must be a positive number"):
        draw.check_truncation(bad)


def test_generate_truncation(run, capsys):
    out = run.parent / "t"
    code, err = _cli(capsys, "generate", run, "--num", 4, "--truncation", 0.5, "--out", out)
    assert code == 0 and "truncation 0.5" in err
    assert json.loads((out / "generate.json").read_text())["truncation"] == 0.5
    for psi in (0, -2):
        code, err = _cli(capsys, "generate", run, "--truncation", psi, "--out", out)
        _one_line(code, err, 2, "--truncation must be a positive number")
    assert len(list(out.glob("*.png"))) == 4  # nothing overwritten


def test_eval_with_truncation_says_scores_are_not_comparable(run, capsys):
    code = main(["eval", str(run), "--num", "64", "--metrics", "swd", "--truncation", "0.7"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "not comparable" in captured.out + captured.err
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["truncation"] == 0.7
    code, err = _cli(capsys, "eval", run, "--num", 64, "--metrics", "swd", "--truncation", 0)
    _one_line(code, err, 2, "--truncation must be a positive number")


# ---------------------------------------------------------------------------------------------
# latent files


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_saved_latents_redraw_the_same_images(run, engine, capsys):
    a, b, z = run.parent / "a", run.parent / "b", run.parent / "z.npy"
    args = ["--engine", engine]
    assert (
        _cli(
            capsys,
            "generate",
            run,
            "--num",
            5,
            "--nice",
            0.25,
            "--save-latents",
            z,
            "--out",
            a,
            *args,
        )[0]
        == 0
    )
    saved = np.load(z)
    assert saved.shape == (5, 8) and saved.dtype == np.float32
    assert _cli(capsys, "generate", run, "--latents", z, "--out", b, *args)[0] == 0
    for i in range(5):  # the nice images, best first, redrawn from their latents
        assert np.array_equal(_png(a / f"{i:05d}.png"), _png(b / f"{i:05d}.png"))
    # plain samples: the saved latents are the seed's latents
    assert _cli(capsys, "generate", run, "--num", 3, "--save-latents", z, "--force", *args)[0] == 0
    assert np.array_equal(np.load(z), draw.latents(3, 8, 0))


def test_bad_latent_files_are_one_line_errors(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli(capsys, "generate", run, "--num", 2, "--out", out)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    files = {
        "size.npy": np.zeros((4, 9), np.float32),
        "nan.npy": np.array([[0.0] * 8, [np.nan] + [0.0] * 7], np.float32),
        "inf.npy": np.full((1, 8), np.inf),
        "int.npy": np.zeros((2, 8), np.int64),
        "flat.npy": np.zeros(8, np.float32),
        "object.npy": np.array([{"a": 1}, None], dtype=object),
    }
    for name, array in files.items():
        np.save(tmp_path / name, array, allow_pickle=True)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.savez(tmp_path / "arch.npz", z=np.zeros((2, 8)))
    expected = {
        "size.npy": "shape (4, 9); this generator wants (N, 8)",
        "nan.npy": "NaN or infinite values (row 1)",
        "inf.npy": "NaN or infinite",
        "int.npy": "dtype int64",
        "flat.npy": "shape (8,)",
        "object.npy": "not a readable .npy",  # pickled objects are refused, never loaded
        "junk.npy": "not a readable .npy",
        "arch.npz": ".npz archive",
        "missing.npy": "does not exist",
    }
    for name, fragment in expected.items():
        code, err = _cli(capsys, "generate", run, "--latents", tmp_path / name, "--out", out)
        _one_line(code, err, 2, fragment)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_latent_option_conflicts(run, tmp_path, capsys):
    z = tmp_path / "z.npy"
    np.save(z, draw.latents(4, 8, 0))
    for extra, fragment in (
        (["--num", 3], "drop --num"),
        (["--seed", 3], "drop --seed"),
        (["--truncation", 1], "drop --truncation"),
        (["--nice", 0.5], "--nice"),
    ):
        code, err = _cli(capsys, "generate", run, "--latents", z, *extra)
        _one_line(code, err, 2, fragment)
    code, err = _cli(capsys, "generate", run, "--num", 2, "--save-latents", z)
    _one_line(code, err, 2, "exists; pass --force")
    code, err = _cli(capsys, "generate", run, "--save-latents", tmp_path, "--force")
    _one_line(code, err, 2, "is a folder")
    assert np.array_equal(np.load(z), draw.latents(4, 8, 0))


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_interpolate_and_arithmetic_take_latent_files(run, tmp_path, engine, capsys):
    def generate(*args):
        return _cli(capsys, "generate", run, "--engine", engine, *args)

    ends = draw.latents(4, 8, 5)
    np.save(tmp_path / "ends.npy", ends)
    out, walk = tmp_path / "walk", tmp_path / "walk.npy"
    code, _ = generate(
        "--latents", tmp_path / "ends.npy", "--interpolate", 5,
        "--out", out, "--save-latents", walk,
    )  # fmt: skip
    z = np.load(walk)
    assert code == 0 and z.shape == (10, 8) and (out / "grid.png").is_file()
    assert np.array_equal(z[0], ends[0]) and np.array_equal(z[4], ends[1])
    assert np.array_equal(z[5], ends[2]) and np.array_equal(z[9], ends[3])
    np.save(tmp_path / "three.npy", ends[:3])
    code, err = generate("--latents", tmp_path / "three.npy", "--interpolate", 4)
    _one_line(code, err, 2, "pairs of latents")

    np.save(tmp_path / "a.npy", ends[:2])
    np.save(tmp_path / "b-1.npy", ends[2:3])
    arith = tmp_path / "arith.npy"
    text = f"{tmp_path / 'a.npy'} - {tmp_path / 'b-1.npy'} + 0,2"
    code, err = generate(
        "--arithmetic", text, "--num", 4, "--seed", 5,
        "--save-latents", arith, "--out", tmp_path / "ar",
    )  # fmt: skip
    assert code == 0, err
    z = np.load(arith)
    c = draw.latents(4, 8, 5)[[0, 2]].mean(0)
    np.testing.assert_allclose(z[3], ends[:2].mean(0) - ends[2] + c, rtol=0, atol=1e-6)
    # indices into a latent file's rows
    code, err = generate(
        "--latents", tmp_path / "ends.npy", "--arithmetic", "0 - 1 + 2",
        "--save-latents", arith, "--force", "--out", tmp_path / "ar2",
    )  # fmt: skip
    assert code == 0 and np.allclose(np.load(arith)[3], ends[0] - ends[1] + ends[2])
    code, err = generate("--latents", tmp_path / "ends.npy", "--arithmetic", "0 - 1 + 9")
    _one_line(code, err, 2, "not among the 4 rows of")


def test_parse_arithmetic_with_files():
    assert latent_space.parse_arithmetic("3,7 - 5 + 1") == ([3, 7], [5], [1])
    a, b, c = latent_space.parse_arithmetic("x/smile.npy - y-z.npy + 4, 5")
    assert (str(a), str(b), c) == ("x/smile.npy", "y-z.npy", [4, 5])
    for bad in ("a.txt - b.npy + 1", "1 - 2", "x.npy-y.npy+z.npy"):
        with pytest.raises(UsageError, match="--arithmetic wants"):
            latent_space.parse_arithmetic(bad)


# ---------------------------------------------------------------------------------------------
# --seeds


def test_parse_seeds():
    assert latent_space.parse_seeds("0-3,100, 2") == [0, 1, 2, 3, 100]
    assert latent_space.parse_seeds(str(config.SEED_MAX)) == [config.SEED_MAX]
    for bad, fragment in (
        ("1-", "--seeds wants"),
        ("a", "--seeds wants"),
        ("5-2", "runs backwards"),
        (str(2**63), "must be an integer from 0"),
        ("0-200000", "more than"),
    ):
        with pytest.raises(UsageError, match=fragment):
            latent_space.parse_seeds(bad)


@pytest.mark.parametrize("engine", ["torch", "numpy"])
def test_a_seed_image_is_the_same_alone_and_in_a_range(run, tmp_path, engine, capsys):
    alone, many = tmp_path / "alone", tmp_path / "many"
    args = ["--engine", engine]
    assert _cli(capsys, "generate", run, "--seeds", "7", "--out", alone, *args)[0] == 0
    assert (
        _cli(capsys, "generate", run, "--seeds", "0-35,100", "--out", many, "--grid", *args)[0] == 0
    )
    names = sorted(p.name for p in many.glob("seed*.png"))
    assert len(names) == 37 and names[0] == "seed0000.png" and "seed0100.png" in names
    assert (alone / "seed0007.png").read_bytes() == (many / "seed0007.png").read_bytes()
    # and it is the seed's first sample
    plain = tmp_path / "plain"
    assert _cli(capsys, "generate", run, "--num", 1, "--seed", 7, "--out", plain, *args)[0] == 0
    assert np.array_equal(_png(plain / "00000.png"), _png(alone / "seed0007.png"))
    code, err = _cli(capsys, "generate", run, "--seeds", "1", "--num", 3)
    _one_line(code, err, 2, "drop --num")


def test_seeds_with_truncation(run, tmp_path, capsys):
    z = tmp_path / "z.npy"
    code, _ = _cli(
        capsys, "generate", run, "--seeds", "3,4", "--truncation", 0.5, "--save-latents", z
    )
    assert code == 0
    assert np.array_equal(np.load(z)[1], draw.truncated_latents(1, 8, 4, 0.5)[0])
    assert (run / "generated" / "step7-seeds3_4-trunc0.5" / "seed0004.png").is_file()


# ---------------------------------------------------------------------------------------------
# output folders


def test_rerun_with_fewer_images_leaves_nothing_stale(run, tmp_path, capsys):
    out = tmp_path / "g"
    assert _cli(capsys, "generate", run, "--num", 6, "--grid", "--out", out)[0] == 0
    assert _cli(capsys, "generate", run, "--num", 2, "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "00001.png", "generate.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_foreign_folder_is_refused_and_untouched(run, tmp_path, capsys):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    code, err = _cli(capsys, "generate", run, "--num", 2, "--out", mine)
    _one_line(code, err, 2, "did not write")
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli(capsys, "generate", run, "--num", 1, "--out", empty)[0] == 0
