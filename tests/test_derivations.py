"""The report's derivations agree with Keras and autodiff, and the checks would notice a wrong formula."""
import numpy as np

from fer import derivations as d


def test_every_derivation_agrees_with_keras_and_autodiff():
    rows = d.checks(seed=1)
    names = [r[0] for r in rows]
    for needed in ("conv_output_size", "batchnorm_forward", "dl/dx_hat", "dl/dvar", "dl/dmean", "dl/dx",
                   "dl/dgamma", "dl/dbeta", "softmax_xent_grad"):
        assert needed in names
    for name, _, error in rows:
        assert error < 1e-5, (name, error)


def test_conv_output_size_known_values():
    assert d.conv_output_size(48, 3) == 46
    assert d.conv_output_size(48, 3, padding="same") == 48
    assert d.conv_output_size(48, 2, stride=2) == 24
    assert d.conv_output_size(47, 3, stride=2, padding="same") == 24
    assert d.conv_output_size(48, 5, stride=2, padding=2) == 24
    assert d.conv_output_size(48, 3, dilation=2) == 44


def test_a_wrong_batchnorm_backward_is_caught():
    """Dropping the variance path from dl/dx, a classic slip, is far outside the tolerance."""
    rng = np.random.default_rng(0)
    x, dy = rng.normal(1, 2, (32, 4)), rng.normal(0, 1, (32, 4))
    gamma, beta = rng.normal(1, 0.3, 4), np.zeros(4)
    _, cache = d.batchnorm_forward(x, gamma, beta)
    right = d.batchnorm_backward(dy, cache)
    inv_std = 1 / np.sqrt(cache["var"] + cache["eps"])
    wrong = right["dx_hat"] * inv_std + right["dmean"] / len(x)
    assert d._relative_error(wrong, right["dx"]) > 1e-2
    # and the right one is a true gradient: a finite difference of sum(dy * y) agrees
    h, i = 1e-6, (3, 2)
    bumped = x.copy()
    bumped[i] += h
    numeric = (np.sum(dy * d.batchnorm_forward(bumped, gamma, beta)[0])
               - np.sum(dy * d.batchnorm_forward(x, gamma, beta)[0])) / h
    assert abs(numeric - right["dx"][i]) < 1e-4 * max(1, abs(numeric))


def test_softmax_cross_entropy_gradient_sums_to_zero_per_example():
    rng = np.random.default_rng(2)
    g = d.softmax_xent_grad(rng.normal(0, 2, (5, 7)), np.eye(7)[[0, 1, 2, 3, 4]])
    np.testing.assert_allclose(g.sum(1), 0, atol=1e-12)
    assert np.all(g[np.arange(5), [0, 1, 2, 3, 4]] < 0)
