"""Functional ops as forward/backward pairs: conv, transposed conv, BatchNorm, activations, losses.

Layout: activations are channels-last, (N, H, W, C) for images and (N, F) for vectors, so every
convolution is one GEMM whose output (pixels x channels) is already that layout: tall-skinny
outputs are what OpenBLAS runs fastest (about 3x a wide (C, N*H*W) output), and the im2col copy
moves runs of C floats. Weights keep PyTorch's layouts. A forward returns (output, cache); its
backward takes the output's gradient and the cache. Ops keep their input's dtype.
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
    """(N, H, W, C) -> zero-padded (N, H+2p, W+2p, C), contiguous."""
    if pad == 0:
        return x if x.flags.c_contiguous else x.copy()
    xp = array_module(x)
    n, h, w, c = x.shape
    out = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=x.dtype)
    out[:, pad : pad + h, pad : pad + w] = x
    return out


def im2col(x, k: int, stride: int, pad: int):
    """(N, H, W, C) -> columns (N*Ho*Wo, k*k*C), column order (kh, kw, c).

    One strided view and one copy: no loop over kernel positions or the batch.
    """
    xp = array_module(x)
    n, h, w, c = x.shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    padded = _pad(x, pad)
    sn, sh, sw, sc = padded.strides
    view = as_strided(xp, padded, (n, ho, wo, k, k, c), (sn, stride * sh, stride * sw, sh, sw, sc))
    return xp.ascontiguousarray(view).reshape(n * ho * wo, k * k * c)


def col2im(cols, shape: tuple[int, int, int, int], k: int, stride: int, pad: int):
    """The adjoint of im2col: sum columns (N*Ho*Wo, k*k*C) back into an image (N, H, W, C).

    Loops over the k*k kernel positions (not the batch): each is one strided add over the whole
    batch, and within one position the target pixels never overlap. Only the layers that are not
    4x4 stride 2 use it (those take the sub-pixel path below).
    """
    xp = array_module(cols)
    n, h, w, c = shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    out = xp.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=cols.dtype)
    cols = cols.reshape(n, ho, wo, k, k, c)
    for i in range(k):
        for j in range(k):
            out[:, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols[
                :, :, :, i, j
            ]
    if pad:
        out = out[:, pad : pad + h, pad : pad + w]
    return xp.ascontiguousarray(out)


# Output row 2a of a k4 s2 p1 transposed conv sums input rows a-1, a with kernel rows 3, 1; row
# 2a+1 sums rows a, a+1 with kernel rows 2, 0. So one 2x2 stride-1 im2col of the input and one
# GEMM give all four output parities (sub-pixel convolution), with no 16x column buffer to
# scatter-add as col2im needs: about half the memory traffic of GEMM + col2im.
_PARITY_TAPS = ((3, 1), (2, 0))


def _upsample_k4s2p1(x, weight):
    """ConvTranspose2d(k=4, stride=2, pad=1): x (N, H, W, Cin), weight (Cin, Cout, 4, 4).

    Returns (N, 2H, 2W, Cout).
    """
    xp = array_module(x)
    cin, cout = weight.shape[:2]
    n, h, w, _ = x.shape
    cols = im2col(x, 2, 1, 1)  # window t covers input rows t-1, t: (N*(H+1)*(W+1), 4*Cin)
    taps = xp.asarray(_PARITY_TAPS)
    w_khkw = xp.ascontiguousarray(weight.transpose(2, 3, 0, 1))  # (kh, kw, Cin, Cout)
    w_all = w_khkw[taps][:, :, taps]  # (row parity, a, col parity, b, Cin, Cout)
    # rows (a, b, Cin) match the columns of `cols`; columns (row parity, col parity, Cout)
    w_all = w_all.transpose(1, 3, 4, 0, 2, 5).reshape(4 * cin, 4 * cout)
    z = (cols @ w_all).reshape(n, h + 1, w + 1, 2, 2, cout)
    y = xp.empty((n, h, 2, w, 2, cout), dtype=z.dtype)
    for r in range(2):
        for c in range(2):
            y[:, :, r, :, c] = z[:, r : r + h, c : c + w, r, c]
    return y.reshape(n, 2 * h, 2 * w, cout)


# ---------------------------------------------------------------------------------------------
# convolutions


def conv2d_forward(x, weight, stride: int, pad: int):
    """x (N, H, W, C), weight (F, C, k, k) as torch's Conv2d, no bias -> y (N, Ho, Wo, F)."""
    f, c, k, _ = weight.shape
    n, h, w, _ = x.shape
    ho, wo = _out_side(h, k, stride, pad), _out_side(w, k, stride, pad)
    cols = im2col(x, k, stride, pad)
    w2 = weight.transpose(2, 3, 1, 0).reshape(k * k * c, f)
    y = (cols @ w2).reshape(n, ho, wo, f)
    return y, (cols, weight, w2, x.shape, stride, pad)


def conv2d_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (N, Ho, Wo, F) -> (dx (N, H, W, C) or None, dweight (F, C, k, k) or None)."""
    cols, weight, w2, x_shape, stride, pad = cache
    f, c, k, _ = weight.shape
    dy2 = dy.reshape(-1, f)
    dw = None
    if need_dw:
        dw = (dy2.T @ cols).reshape(f, k, k, c).transpose(0, 3, 1, 2)
    dx = None
    if need_dx and (k, stride, pad) == (4, 2, 1) and x_shape[1] % 2 == 0 and x_shape[2] % 2 == 0:
        dx = _upsample_k4s2p1(dy, weight)  # conv's input gradient is a transposed conv of dy
    elif need_dx:
        dx = col2im(dy2 @ w2.T, x_shape, k, stride, pad)
    return dx, dw


def conv_transpose2d_forward(x, weight, stride: int, pad: int):
    """x (N, H, W, Cin), weight (Cin, Cout, k, k) as torch's ConvTranspose2d, no bias.

    Returns y (N, (H-1)*stride - 2*pad + k, ..., Cout): the adjoint of conv2d.
    """
    cin, cout, k, _ = weight.shape
    n, h, w, _ = x.shape
    if (k, stride, pad) == (4, 2, 1):
        return _upsample_k4s2p1(x, weight), (x, weight, stride, pad)
    ho, wo = (h - 1) * stride - 2 * pad + k, (w - 1) * stride - 2 * pad + k
    cols = x.reshape(-1, cin) @ weight.transpose(0, 2, 3, 1).reshape(cin, k * k * cout)
    return col2im(cols, (n, ho, wo, cout), k, stride, pad), (x, weight, stride, pad)


def conv_transpose2d_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (N, Ho, Wo, Cout) -> (dx (N, H, W, Cin) or None, dweight (Cin, Cout, k, k) or None)."""
    x, weight, stride, pad = cache
    cin, cout, k, _ = weight.shape
    cols = im2col(dy, k, stride, pad)  # (N*H*W, k*k*Cout)
    dw = None
    if need_dw:
        dw = (x.reshape(-1, cin).T @ cols).reshape(cin, k, k, cout).transpose(0, 3, 1, 2)
    dx = None
    if need_dx:
        dx = (cols @ weight.transpose(2, 3, 1, 0).reshape(k * k * cout, cin)).reshape(x.shape)
    return dx, dw


# ---------------------------------------------------------------------------------------------
# dense and normalisation


def linear_forward(x, weight, bias):
    """x (N, Fin), weight (Fout, Fin) as torch's Linear, bias (Fout,) or None -> y (N, Fout)."""
    y = x @ weight.T
    if bias is not None:
        y += bias
    return y, (x, weight)


def linear_backward(dy, cache: Cache, need_dx: bool = True, need_dw: bool = True):
    """dy (N, Fout) -> (dx (N, Fin) or None, dweight or None, dbias or None)."""
    x, weight = cache
    dx = dy @ weight if need_dx else None
    if not need_dw:
        return dx, None, None
    return dx, dy.T @ x, dy.sum(axis=0)


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
    """x (..., C) with features last; gamma, beta, running stats (C,). Returns (y, cache).

    In training, normalises by the batch's biased variance and updates the running statistics in
    place as torch does: new = (1 - momentum) * old + momentum * batch, with the unbiased variance.
    """
    c = x.shape[-1]
    x2 = x.reshape(-1, c)
    m = x2.shape[0]
    if training:
        mean = x2.mean(axis=0)
        centred = x2 - mean
        var = (centred * centred).mean(axis=0)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += (momentum * m / max(m - 1, 1)) * var
    else:
        centred = x2 - running_mean.astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std = 1.0 / array_module(x).sqrt(var + eps)
    x_hat = centred
    x_hat *= inv_std
    y = x_hat * gamma + beta
    return y.reshape(x.shape), (x_hat, gamma, inv_std, training)


def batch_norm_backward(dy, cache: Cache):
    """dy (..., C) -> (dx (..., C), dgamma (C,), dbeta (C,))."""
    x_hat, gamma, inv_std, training = cache
    m, c = x_hat.shape
    dy2 = dy.reshape(m, c)
    dbeta = dy2.sum(axis=0)
    dgamma = (dy2 * x_hat).sum(axis=0)
    if training:
        # d/dx of (x - mean) / std with mean and std from the same batch
        dx = dy2 - dbeta / m
        dx -= x_hat * (dgamma / m)
        dx *= gamma * inv_std
    else:
        dx = dy2 * (gamma * inv_std)
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
    """Any shape -> same shape: x if x > 0 else slope * x, for 0 <= slope < 1."""
    xp = array_module(x)
    y = x * x.dtype.type(slope)
    xp.maximum(x, y, out=y)  # max(x, slope*x): np.where with a random mask is ~10x slower
    return y, (y, slope)


def leaky_relu_backward(dy, cache: Cache):
    y, slope = cache
    # the slope where y <= 0, else 1, as arithmetic on a float mask (much faster than np.where)
    scale = (y > 0).astype(dy.dtype)
    scale *= dy.dtype.type(1 - slope)
    scale += dy.dtype.type(slope)
    scale *= dy
    return scale


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
