"""The NumPy engine against the torch engine: same weights and inputs, same outputs and gradients."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dcgan import models as torch_models  # noqa: E402
from dcgan.config import ModelConfig  # noqa: E402
from dcgan.numpy_engine import Adam, build_models, ops  # noqa: E402

CONFIGS = {
    "dcgan28": ModelConfig(
        image_size=28, channels=1, latent_dim=8, g_features=4, d_features=4, d_norm="batch"
    ),
    "dcgan64": ModelConfig(
        image_size=64, channels=3, latent_dim=8, g_features=4, d_features=4, d_norm="batch"
    ),
    "mlp": ModelConfig(
        kind="mlp",
        image_size=8,
        channels=1,
        latent_dim=8,
        g_features=4,
        d_features=4,
        d_norm="batch",
    ),
}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # tiny models: torch's thread pool only adds spin-waits (seconds on a busy 2-core machine)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _pair(cfg: ModelConfig):
    """Torch and numpy (G, D) holding the same weights (drawn by the numpy init)."""
    g, d = build_models(cfg, np.random.default_rng(0))
    tg, td = torch_models.build_models(cfg)
    for ours, theirs in ((g, tg), (d, td)):
        theirs.load_state_dict(
            {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
        )
    return g, d, tg, td


def _close(ours, theirs, tol):
    theirs = theirs.detach().numpy()
    scale = max(np.abs(theirs).max(), 1e-12)
    assert np.abs(ours - theirs).max() <= tol * scale, np.abs(ours - theirs).max() / scale


@pytest.fixture(params=list(CONFIGS))
def cfg(request):
    return CONFIGS[request.param]


@pytest.mark.parametrize("training", [True, False])
def test_forward_outputs_match(cfg, training):
    g, d, tg, td = _pair(cfg)
    # a few train-mode batches first, so eval mode uses non-trivial running statistics
    rng = np.random.default_rng(1)
    for _ in range(2):
        z = rng.standard_normal((6, cfg.latent_dim)).astype(np.float32)
        g(z), tg(torch.from_numpy(z))
    g.train(training), tg.train(training), d.train(training), td.train(training)
    z = rng.standard_normal((6, cfg.latent_dim)).astype(np.float32)
    images = g(z)
    np.testing.assert_allclose(images, tg(torch.from_numpy(z)).detach().numpy(), atol=1e-4)
    np.testing.assert_allclose(d(images), td(torch.from_numpy(images)).detach().numpy(), atol=1e-4)
    for key, value in g.state_dict().items():
        np.testing.assert_allclose(value, tg.state_dict()[key].numpy(), atol=1e-6, err_msg=key)


def test_gradients_and_adam_step_match(cfg):
    g, d, tg, td = _pair(cfg)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, cfg.latent_dim)).astype(np.float32)
    real = rng.uniform(-1, 1, (6, cfg.channels, cfg.image_size, cfg.image_size)).astype(np.float32)
    target = np.linspace(0, 1, 6).astype(np.float32)

    # ours: loss = BCE(D(G(z)), t) + MSE(D(real), t), gradients to every parameter of G and D

    fake = g(z)
    logits_fake = d(fake)
    _, cache = ops.bce_with_logits_forward(logits_fake, target)
    dimages = d.backward(ops.bce_with_logits_backward(cache), need_dx=True)
    g.backward(dimages)
    _, diff = ops.mse_forward(d(real), target)
    d.backward(ops.mse_backward(diff))

    t_target = torch.from_numpy(target)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        td(tg(torch.from_numpy(z))), t_target
    ) + torch.nn.functional.mse_loss(td(torch.from_numpy(real)), t_target)
    loss.backward()

    for ours, theirs in ((g, tg), (d, td)):
        named = dict(theirs.named_parameters())
        for key, grad in ours.gradients().items():
            _close(grad, named[key].grad, 1e-3)

    # Adam alone: both take torch's gradients (a bias before BatchNorm has a gradient that is
    # mathematically zero, so its float noise would decide the sign of the step)
    for ours, theirs in ((g, tg), (d, td)):
        named = dict(theirs.named_parameters())
        for key, grad in ours.gradients().items():
            grad[...] = named[key].grad.numpy()
        opt = Adam(ours.parameters(), lr=1e-2, betas=(0.5, 0.999))
        t_opt = torch.optim.Adam(theirs.parameters(), lr=1e-2, betas=(0.5, 0.999))
        opt.step(ours.gradients())
        t_opt.step()
        named = dict(theirs.named_parameters())
        for key, value in ours.parameters().items():
            np.testing.assert_allclose(value, named[key].detach().numpy(), atol=1e-5, err_msg=key)


def test_numpy_checkpoint_arrays_resume_in_torch(tmp_path):
    """Model arrays and Adam state written by the numpy engine load into torch and step alike."""
    from dcgan.checkpoint import read_checkpoint, subset, write_checkpoint
    from dcgan.numpy_engine.serialize import model_to_arrays, optimizer_to_arrays

    cfg = CONFIGS["dcgan28"]
    g, _ = build_models(cfg, np.random.default_rng(0))
    opt = Adam(g.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    g(rng.standard_normal((4, cfg.latent_dim), dtype=np.float32))
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in g.parameters().items()}
    opt.step(grads)
    opt_arrays, entry = optimizer_to_arrays("opt_g", opt)
    path = tmp_path / "c.safetensors"
    write_checkpoint(path, {**model_to_arrays("generator", g), **opt_arrays}, {"opt_g": entry})
    arrays, meta = read_checkpoint(path, validate=False)

    tg, _ = torch_models.build_models(cfg)
    tg.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in subset(arrays, "generator").items()}
    )
    t_opt = torch.optim.Adam(tg.parameters())
    names = [n for n, _ in tg.named_parameters()]
    state = {
        i: {
            "step": torch.tensor(meta["opt_g"]["steps"][n]),
            "exp_avg": torch.from_numpy(arrays[f"opt_g.{n}.exp_avg"].copy()),
            "exp_avg_sq": torch.from_numpy(arrays[f"opt_g.{n}.exp_avg_sq"].copy()),
        }
        for i, n in enumerate(names)
    }
    groups = [{**grp, "betas": tuple(grp["betas"])} for grp in meta["opt_g"]["param_groups"]]
    t_opt.load_state_dict({"state": state, "param_groups": groups})

    opt.step(grads)
    for name, p in tg.named_parameters():
        p.grad = torch.from_numpy(grads[name])
    t_opt.step()
    for name, p in tg.named_parameters():
        np.testing.assert_allclose(g.parameters()[name], p.detach().numpy(), atol=1e-6)
