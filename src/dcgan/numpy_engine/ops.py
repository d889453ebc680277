"""Functional ops as forward/backward pairs: conv, transposed conv, BatchNorm, activations, losses.

Layout: activations are feature-major, (C, N, H, W) for images and (F, N) for vectors, so every
convolution is one GEMM whose output is already in that layout and BatchNorm reduces contiguous
rows. Weights keep PyTorch's layouts. A forward returns (output, cache); its backward takes the
output's gradient and the cache. Ops keep their input's dtype (float32 to train, float64 to check).
"""

from __future__ import annotations

from typing import Any

from .backend import array_module, as_strided

Cache = Any


# ---------------------------------------------------------------------------------------------
# im2col / col2im


def _out_side(side: int, k: int, stride: int, pad: int) -> int:
    return (side + 2 * pad - k) // stride + 1


def _pad(x, pad: int):
    """(C, N, H, W) -> zero-padded (C, N, H+2p, W+2p), contiguous."""
    if pad == 0:
        return x if x.flags.c_contiguous else x.copy()
    xp = array_module(x)
    c, n, h, w = x.shape
    out = xp.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
    out[:, :, pad : pad + h, pad : pad + w] = x
    return out


def im2col(x, k: int, stride: int, pad: int):
    """(C, N, H, W) -> columns (C*k*k, N*Ho*Wo), the right operand of the convolution GEMM.

    One strided view and one copy: no loop over kernel positions or the batch.
    """
    xp = array_module(x)
    c, n, h, w = x.shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    padded = _pad(x, pad)
    sc, sn, sh, sw = padded.strides
    view = as_strided(xp, padded, (c, k, k, n, ho, wo), (sc, sh, sw, sn, stride * sh, stride * sw))
    return xp.ascontiguousarray(view).reshape(c * k * k, n * ho * wo)


def col2im(cols, shape: tuple[int, int, int, int], k: int, stride: int, pad: int):
    """The adjoint of im2col: sum columns (C*k*k, N*Ho*Wo) back into an image (C, N, H, W).

    Loops over the k*k kernel positions (not the batch): each is one strided add over the whole
    batch, and within one position the target pixels never overlap.
    """
    xp = array_module(cols)
    c, n, h, w = shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    out = xp.zeros((c, n, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    cols = cols.reshape(c, k, k, n, ho, wo)
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[:, i, j]
    if pad:
        out = out[:, :, pad : pad + h, pad : pad + w]
    return xp.ascontiguousarray(out)


# Output row 2a of a k4 s2 p1 transposed conv sums input rows a-1, a with kernel rows 3, 1; row
# 2a+1 sums rows a, a+1 with kernel rows 2, 0. So one 2x2 stride-1 im2col of the input and one
# GEMM give all four output parities (sub-pixel convolution), with no 16x column buffer to
# scatter-add as col2im needs: about half the memory traffic of GEMM + col2im.
_PARITY_TAPS = ((3, 1), (2, 0))


def _upsample_k4s2p1(x, weight):
    """ConvTranspose2d(k=4, stride=2, pad=1): x (Cin, N, H, W), weight (Cin, Cout, 4, 4).

    Returns (Cout, N, 2H, 2W).
    """
    xp = array_module(x)
    cin, cout = weight.shape[:2]
    _, n, h, w = x.shape
    cols = im2col(x, 2, 1, 1)  # window t covers input rows t-1, t: (Cin*4, N*(H+1)*(W+1))
    w_parity = xp.stack(
        [
            weight[:, :, list(rows)][:, :, :, list(cs)]
            for rows in _PARITY_TAPS
            for cs in _PARITY_TAPS
        ]
    )  # (4, Cin, Cout, 2, 2)
    w_parity = xp.ascontiguousarray(w_parity.transpose(0, 2, 1, 3, 4)).reshape(4 * cout, cin * 4)
    z = (w_parity @ cols).reshape(2, 2, cout, n, h + 1, w + 1)
    y = xp.empty((cout, n, h, 2, w, 2), dtype=z.dtype)
    for r in range(2):
        for c in range(2):
            y[:, :, :, r, :, c] = z[r, c, :, :, r : r + h, c : c + w]
    return y.reshape(cout, n, 2 * h, 2 * w)


# ---------------------------------------------------------------------------------------------
# convolutions


def conv2d_forward(x, weight, stride: int, pad: int):
    """x (C, N, H, W), weight (F, C, k, k) as torch's Conv2d, no bias -> y (F, N, Ho, Wo)."""
    f, c, k, _ = weight.shape
    _, n, h, w = x.shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    cols = im2col(x, k, stride, pad)
    y = (weight.reshape(f, c * k * k) @ cols).reshape(f, n, ho, wo)
    return y, (cols, weight, x.shape, stride, pad)


def conv2d_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (F, N, Ho, Wo) -> (dx (C, N, H, W) or None, dweight (F, C, k, k) or None)."""
    cols, weight, x_shape, stride, pad = cache
    f, c, k, _ = weight.shape
    dy2 = dy.reshape(f, -1)
    dw = (dy2 @ cols.T).reshape(weight.shape) if need_dw else None
    dx = None
    if need_dx and (k, stride, pad) == (4, 2, 1) and x_shape[2] % 2 == 0 and x_shape[3] % 2 == 0:
        dx = _upsample_k4s2p1(dy, weight)  # conv's input gradient is a transposed conv of dy
    elif need_dx:
        dx = col2im(weight.reshape(f, c * k * k).T @ dy2, x_shape, k, stride, pad)
    return dx, dw


def conv_transpose2d_forward(x, weight, stride: int, pad: int):
    """x (Cin, N, H, W), weight (Cin, Cout, k, k) as torch's ConvTranspose2d, no bias.

    Returns y (Cout, N, (H-1)*stride - 2*pad + k, ...): the adjoint of conv2d, so one GEMM
    into columns and one col2im.
    """
    cin, cout, k, _ = weight.shape
    _, n, h, w = x.shape
    ho, wo = (h - 1) * stride - 2 * pad + k, (w - 1) * stride - 2 * pad + k
    if (k, stride, pad) == (4, 2, 1):
        return _upsample_k4s2p1(x, weight), (x, weight, stride, pad)
    cols = weight.reshape(cin, cout * k * k).T @ x.reshape(cin, n * h * w)
    y = col2im(cols, (cout, n, ho, wo), k, stride, pad)
    return y, (x, weight, stride, pad)


def conv_transpose2d_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (Cout, N, Ho, Wo) -> (dx (Cin, N, H, W) or None, dweight (Cin, Cout, k, k) or None)."""
    x, weight, stride, pad = cache
    cin, cout, k, _ = weight.shape
    cols = im2col(dy, k, stride, pad)  # (Cout*k*k, N*H*W)
    x2 = x.reshape(cin, -1)
    dw = (x2 @ cols.T).reshape(weight.shape) if need_dw else None
    dx = (weight.reshape(cin, cout * k * k) @ cols).reshape(x.shape) if need_dx else None
    return dx, dw


# ---------------------------------------------------------------------------------------------
# dense and normalisation


def linear_forward(x, weight, bias):
    """x (Fin, N), weight (Fout, Fin) as torch's Linear, bias (Fout,) or None -> y (Fout, N)."""
    y = weight @ x
    if bias is not None:
        y += bias[:, None]
    return y, (x, weight)


def linear_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (Fout, N) -> (dx (Fin, N) or None, dweight or None, dbias or None)."""
    x, weight = cache
    dx = weight.T @ dy if need_dx else None
    if not need_dw:
        return dx, None, None
    return dx, dy @ x.T, dy.sum(axis=1)


def batch_norm_forward(
    x,
    gamma,
    beta,
    running_mean,
    running_var,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
):
    """x (C, ...) with features first; gamma, beta, running stats (C,). Returns (y, cache).

    In training, normalises by the batch's biased variance and updates the running statistics in
    place as torch does: new = (1 - momentum) * old + momentum * batch, with the unbiased variance.
    """
    c = x.shape[0]
    x2 = x.reshape(c, -1)
    m = x2.shape[1]
    if training:
        mean = x2.mean(axis=1)
        centred = x2 - mean[:, None]
        var = (centred * centred).mean(axis=1)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * m / max(m - 1, 1)) * var
    else:
        centred = x2 - running_mean[:, None].astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std = 1.0 / array_module(x).sqrt(var + eps)
    x_hat = centred
    x_hat *= inv_std[:, None]
    y = x_hat * gamma[:, None] + beta[:, None]
    return y.reshape(x.shape), (x_hat, gamma, inv_std, training)


def batch_norm_backward(dy, cache: Cache):
    """dy (C, ...) -> (dx (C, ...), dgamma (C,), dbeta (C,))."""
    x_hat, gamma, inv_std, training = cache
    c, m = x_hat.shape
    dy2 = dy.reshape(c, m)
    dbeta = dy2.sum(axis=1)
    dgamma = (dy2 * x_hat).sum(axis=1)
    if training:
        # d/dx of (x - mean) / std with mean and std from the same batch
        dx = dy2 - (dbeta / m)[:, None]
        dx -= x_hat * (dgamma / m)[:, None]
        dx *= (gamma * inv_std)[:, None]
    else:
        dx = dy2 * (gamma * inv_std)[:, None]
    return dx.reshape(dy.shape), dgamma, dbeta


# ---------------------------------------------------------------------------------------------
# activations (the cache is what the backward needs, never a copy of the input)


def relu_forward(x):
    """Any shape -> same shape."""
    y = array_module(x).maximum(x, 0)
    return y, y


def relu_backward(dy, y):
    return dy * (y > 0)


def leaky_relu_forward(x, slope: float = 0.2):
    """Any shape -> same shape: x if x > 0 else slope * x."""
    xp = array_module(x)
    y = xp.where(x > 0, x, x * slope)
    return y, (x > 0, slope)


def leaky_relu_backward(dy, cache: Cache):
    positive, slope = cache
    return array_module(dy).where(positive, dy, dy * slope)


def tanh_forward(x):
    y = array_module(x).tanh(x)
    return y, y


def tanh_backward(dy, y):
    return dy * (1 - y * y)


# ---------------------------------------------------------------------------------------------
# losses (means over all elements, as torch's default reduction)


def bce_with_logits_forward(logits, target):
    """logits, target: same shape, target in [0, 1]. Returns (scalar loss, cache).

    Uses max(l, 0) - l*t + log(1 + exp(-|l|)), stable for any logit, as torch does.
    """
    xp = array_module(logits)
    loss = xp.maximum(logits, 0) - logits * target + xp.log1p(xp.exp(-xp.abs(logits)))
    return loss.mean(), (logits, target)


def bce_with_logits_backward(cache: Cache, dloss=1.0):
    """-> dlogits, same shape as the logits: (sigmoid(l) - t) / n."""
    logits, target = cache
    xp = array_module(logits)
    sig = 0.5 * (xp.tanh(0.5 * logits) + 1)  # sigmoid without overflow for large |l|
    return (sig - target) * (dloss / logits.size)


def mse_forward(pred, target):
    """pred, target: same shape. Returns (scalar mean squared error, cache)."""
    diff = pred - target
    return (diff * diff).mean(), diff


def mse_backward(diff, dloss=1.0):
    return diff * (2 * dloss / diff.size)
