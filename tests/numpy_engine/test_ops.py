"""Finite-difference gradient checks of every NumPy-engine op in float64 (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from dcgan.numpy_engine import ops


def _numeric_grad(f, x, eps=1e-6, samples=40, rng=None):
    """Central differences of scalar f at up to `samples` random coordinates of x (in place)."""
    rng = rng or np.random.default_rng(0)
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=min(samples, flat.size), replace=False)
    out = {}
    for i in idx:
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        out[i] = (plus - minus) / (2 * eps)
    return out


def _check(f, analytic, x, rtol=1e-5, atol=1e-7):
    for i, num in _numeric_grad(f, x).items():
        np.testing.assert_allclose(analytic.reshape(-1)[i], num, rtol=rtol, atol=atol)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


CONV_CASES = [
    # (C, F, H, k, stride, pad): k4 s2 p1 even (sub-pixel path), odd (col2im path), a base conv
    (2, 3, 6, 4, 2, 1),
    (2, 3, 5, 4, 2, 1),
    (3, 2, 4, 4, 1, 0),
    (2, 2, 5, 3, 1, 1),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_gradients(case):
    c, f, h, k, s, p = case
    x, w = _rand(2, h, h, c), _rand(f, c, k, k, seed=1)
    y, _ = ops.conv2d_forward(x, w, s, p)
    r = _rand(*y.shape, seed=2)
    loss = lambda: (ops.conv2d_forward(x, w, s, p)[0] * r).sum()
    dx, dw = ops.conv2d_backward(r, ops.conv2d_forward(x, w, s, p)[1])
    _check(loss, dx, x)
    _check(loss, dw, w)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_transpose2d_gradients(case):
    c, f, h, k, s, p = case
    x, w = _rand(2, h, h, c), _rand(c, f, k, k, seed=1)
    y, _ = ops.conv_transpose2d_forward(x, w, s, p)
    r = _rand(*y.shape, seed=2)
    loss = lambda: (ops.conv_transpose2d_forward(x, w, s, p)[0] * r).sum()
    dx, dw = ops.conv_transpose2d_backward(r, ops.conv_transpose2d_forward(x, w, s, p)[1])
    _check(loss, dx, x)
    _check(loss, dw, w)


def test_conv_transpose_is_the_adjoint_of_conv():
    # <conv(x), y> == <x, convT(y)> with the same weight: checks the forward pass itself
    for h, k, s, p in ((6, 4, 2, 1), (4, 4, 1, 0), (5, 3, 1, 1)):
        x, w = _rand(2, h, h, 3), _rand(4, 3, k, k, seed=1)
        y = _rand(*ops.conv2d_forward(x, w, s, p)[0].shape, seed=2)
        up, _ = ops.conv_transpose2d_forward(y, w, s, p)
        assert up.shape == x.shape
        np.testing.assert_allclose((ops.conv2d_forward(x, w, s, p)[0] * y).sum(), (x * up).sum())


def test_linear_gradients():
    x, w, b = _rand(3, 4), _rand(5, 4, seed=1), _rand(5, seed=2)
    r = _rand(3, 5, seed=3)
    loss = lambda: (ops.linear_forward(x, w, b)[0] * r).sum()
    dx, dw, db = ops.linear_backward(r, ops.linear_forward(x, w, b)[1])
    for value, grad in ((x, dx), (w, dw), (b, db)):
        _check(loss, grad, value)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradients(training):
    x, gamma, beta = _rand(4, 2, 2, 3), 1 + 0.1 * _rand(3, seed=1), _rand(3, seed=2)
    r = _rand(4, 2, 2, 3, seed=3)

    def run():
        # fresh running stats each call, so the forward is a pure function of its inputs
        mean, var = np.full(3, 0.3), np.full(3, 1.7)
        return ops.batch_norm_forward(x, gamma, beta, mean, var, training)

    loss = lambda: (run()[0] * r).sum()
    dx, dgamma, dbeta = ops.batch_norm_backward(r, run()[1])
    for value, grad in ((x, dx), (gamma, dgamma), (beta, dbeta)):
        _check(loss, grad, value)


def test_batch_norm_running_statistics_follow_torch_semantics():
    x = _rand(5, 2, seed=4)
    mean, var = np.zeros(2), np.ones(2)
    ops.batch_norm_forward(x, np.ones(2), np.zeros(2), mean, var, True, momentum=0.2)
    np.testing.assert_allclose(mean, 0.2 * x.mean(axis=0))
    np.testing.assert_allclose(var, 0.8 + 0.2 * x.var(axis=0, ddof=1))  # unbiased in the buffer


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "tanh"])
def test_activation_gradients(name):
    x = _rand(3, 4, 5)
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kink for finite differences
    r = _rand(3, 4, 5, seed=1)
    forward, backward = getattr(ops, f"{name}_forward"), getattr(ops, f"{name}_backward")
    loss = lambda: (forward(x)[0] * r).sum()
    _check(loss, backward(r, forward(x)[1]), x)


def test_bce_with_logits_gradient_and_stability():
    logits, target = _rand(7) * 3, np.random.default_rng(1).uniform(0, 1, 7)
    loss = lambda: ops.bce_with_logits_forward(logits, target)[0]
    _check(
        loss, ops.bce_with_logits_backward(ops.bce_with_logits_forward(logits, target)[1]), logits
    )
    big = np.array([-1000.0, 1000.0])
    value, cache = ops.bce_with_logits_forward(big, np.array([0.0, 1.0]))
    assert value == 0 and np.all(np.isfinite(ops.bce_with_logits_backward(cache)))


def test_mse_gradient():
    pred, target = _rand(3, 4), _rand(3, 4, seed=1)
    loss = lambda: ops.mse_forward(pred, target)[0]
    _check(loss, ops.mse_backward(ops.mse_forward(pred, target)[1]), pred)
