import numpy as np
import pytest
import torch

from dcgan.augment import (
    AugmentParams,
    apply_params,
    augment_rng,
    cutout,
    diff_augment,
    draw_params,
    parse_policy,
    translate,
)
from dcgan.errors import UsageError


def _batch(n=6, c=3, side=16, seed=0):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_parse_policy_names_and_errors():
    assert parse_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(UsageError, match="color, translation, cutout"):
        parse_policy("colour")
    with pytest.raises(UsageError, match="twice"):
        parse_policy("cutout,cutout")


def test_translation_moves_content_and_fills_with_zeros():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 4] = 1.0
    out = translate(x, torch.tensor([[1, -2]]))  # out[y, x] = in[y + 1, x - 2]
    assert out[0, 0, 2, 6] == 1.0 and out.sum() == 1.0
    full = translate(torch.ones(1, 1, 8, 8), torch.tensor([[2, 0]]))
    assert full[0, 0, :6].eq(1).all() and full[0, 0, 6:].eq(0).all()  # zero-padded at the edge


def test_cutout_zeros_a_half_side_square():
    out = cutout(torch.ones(2, 3, 16, 16), torch.tensor([[8, 8], [0, 0]]))
    assert (out[0] == 0).sum() == 3 * 8 * 8  # 8x8 centred square in every channel
    assert out[0, :, 4:12, 4:12].eq(0).all()
    assert (out[1] == 0).sum() == 3 * 4 * 4  # clipped at the corner


def test_same_rng_same_output_and_no_global_rng():
    x = _batch()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = diff_augment(x, "color,translation,cutout", augment_rng(0, 5, 0, 0))
    b = diff_augment(x, "color,translation,cutout", augment_rng(0, 5, 0, 0))
    c = diff_augment(x, "color,translation,cutout", augment_rng(0, 6, 0, 0))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert torch.equal(torch.get_rng_state(), before)  # the global torch RNG was not used


def test_translation_shifts_at_most_an_eighth_and_does_move():
    p = draw_params("translation", 500, 3, 32, 32, np.random.default_rng(0))
    assert p.shift.min() == -4 and p.shift.max() == 4  # round(32 / 8) = 4
    x = _batch(n=8, side=32)
    out = diff_augment(x, "translation", np.random.default_rng(1))
    moved = [not torch.equal(out[i], x[i]) for i in range(8)]
    assert sum(moved) >= 6


def test_gradients_flow_through_every_transform():
    x = _batch().requires_grad_(True)
    out = diff_augment(x, "color,translation,cutout", np.random.default_rng(0))
    (out**2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # a pixel cut out or shifted away gets no gradient; the rest do
    assert (x.grad != 0).float().mean() > 0.3


def test_gradient_matches_finite_differences():
    x = _batch(n=2, c=3, side=8).double().requires_grad_(True)
    params = draw_params("color,translation,cutout", 2, 3, 8, 8, np.random.default_rng(3))
    torch.autograd.gradcheck(lambda t: apply_params(t, params), (x,))


def test_colour_on_grey_images_skips_saturation():
    p = draw_params("color", 4, 1, 8, 8, np.random.default_rng(0))
    assert p.saturation is None and p.brightness is not None and p.contrast is not None
    out = diff_augment(_batch(c=1), "color", np.random.default_rng(0))
    assert out.shape == (6, 1, 16, 16)


def test_brightness_and_contrast_act_as_specified():
    x = _batch(n=2)
    out = apply_params(x, AugmentParams(brightness=np.array([0.25, -0.5])))
    torch.testing.assert_close(
        out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)) + torch.tensor([0.25, -0.5])
    )
    out = apply_params(x, AugmentParams(contrast=np.array([1.0, 0.5])))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1].std(), x[1].std() * 0.5)


def test_empty_policy_is_identity():
    x = _batch()
    assert diff_augment(x, "", np.random.default_rng(0)) is x


def test_params_drawn_for_the_global_batch_shard_by_rank():
    p = draw_params("color,translation,cutout", 8, 3, 16, 16, np.random.default_rng(0))
    x = _batch(n=8)
    whole = apply_params(x, p)
    parts = [apply_params(x[r * 4 : (r + 1) * 4], p.shard(r, 2)) for r in range(2)]
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=0)
