"Edge cases and bad input for paper_distill.loss and paper_distill.sampling (what the notebooks can't show well)."
import itertools, math
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paper_distill.loss import (bt_loss, bt_pair_loss, bt_loss_paper, pairwise_accuracy, ranking_levels, pair_masks,
                                inverse_frequency_weights, pl_loss, UNRANKED, ABSENT)
from paper_distill.sampling import (range_bins, preference_group, PreferenceSampler, UniformSampler, UncertaintySampler,
                                    SampledGroups, SamplerConfig, make_sampler)


# ---------------------------------------------------------------- loss: references

def _pairs(rank, k):
    "Pairs (winner, loser) of a possibly partial ranking, enumerated by hand."
    top = [x for x in rank if x >= 0]
    rest = [j for j in range(k) if j not in top]
    return list(itertools.combinations(top, 2)) + [(i, j) for i in top for j in rest]

def _ref_loss(s, rankings, masks=None, scale=1.0):
    "Per-group BT loss by a python loop over enumerated pairs (padding slots dropped)."
    out = []
    for b in range(len(s)):
        k = s.shape[1] if masks is None else int(masks[b].sum())
        tot = 0.0
        for i, j in _pairs(list(rankings[b]), k):
            d = scale * (float(s[b, i]) - float(s[b, j]))
            tot += -math.log(1 / (1 + math.exp(-d)))
        out.append(tot)
    return out

@pytest.mark.parametrize("k", [2, 3, 4, 6, 9])
def test_any_k_matches_loop(k):
    g = torch.Generator().manual_seed(k)
    s = torch.randn(7, k, dtype=torch.float64, generator=g)
    rk = torch.stack([torch.randperm(k, generator=g) for _ in range(7)])
    got = bt_loss(s, rk, scale=2.5, reduction='none')
    np.testing.assert_allclose(got.numpy(), _ref_loss(s, rk.tolist(), scale=2.5), rtol=1e-10)
    assert pair_masks(ranking_levels(rk, k))[0].sum().item() == 7 * k * (k - 1) // 2

def test_variable_k_batch_with_mask_equals_separate_groups():
    g = torch.Generator().manual_seed(0)
    sizes = [2, 3, 5, 6, 4]
    K = max(sizes)
    s = torch.full((len(sizes), K), float('nan'), dtype=torch.float64)
    mask = torch.zeros(len(sizes), K, dtype=torch.bool)
    rk = torch.full((len(sizes), K), -1)
    for b, n in enumerate(sizes):
        s[b, :n] = torch.randn(n, dtype=torch.float64, generator=g)
        mask[b, :n] = True
        rk[b, :n] = torch.randperm(n, generator=g)
    s.requires_grad_(True)
    per = bt_loss(s, rk, mask=mask, reduction='none')
    ref = _ref_loss(s.detach(), rk.tolist(), masks=mask)
    np.testing.assert_allclose(per.detach().numpy(), ref, rtol=1e-10)
    per.sum().backward()
    assert torch.isfinite(s.grad).all()                       # NaN padding does not leak into gradients
    assert (s.grad[~mask] == 0).all()
    n_pairs = sum(n * (n - 1) // 2 for n in sizes)
    torch.testing.assert_close(bt_loss(s, rk, mask=mask, reduction='mean_pairs'), per.sum() / n_pairs)

def test_top1_partial_ranking_is_best_vs_rest():
    s = torch.tensor([[0.2, 0.9, -0.3, 0.0]], dtype=torch.float64)
    rk = torch.tensor([[2, -1, -1, -1]])
    expect = sum(-F.logsigmoid(s[0, 2] - s[0, j]).item() for j in (0, 1, 3))
    assert bt_loss(s, rk).item() == pytest.approx(expect, rel=1e-12)
    # an m-column partial ranking without padding is accepted too
    assert bt_loss(s, torch.tensor([[2]])).item() == pytest.approx(expect, rel=1e-12)
    assert ranking_levels(torch.tensor([[2]]), 4).tolist() == [[UNRANKED, UNRANKED, 0, UNRANKED]]

def test_rankings_from_numpy_and_lists():
    s = torch.randn(2, 3)
    a = bt_loss(s, torch.tensor([[0, 1, 2], [2, 1, 0]]))
    torch.testing.assert_close(bt_loss(s, np.array([[0, 1, 2], [2, 1, 0]])), a)
    torch.testing.assert_close(bt_loss(s, [[0, 1, 2], [2, 1, 0]]), a)

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_extreme_scores_finite(dtype, scale):
    s = (torch.tensor([[1e4, -1e4, 3e3, -3e3, 0.0]] * 3, dtype=dtype) * torch.tensor([[1.], [-1.], [0.5]], dtype=dtype)).requires_grad_()
    rk = torch.tensor([[0, 2, 4, 3, 1]] * 3)
    for red in ('mean', 'mean_pairs', 'sum'):
        s.grad = None
        l = bt_loss(s, rk, scale=scale, reduction=red)
        l.backward()
        assert torch.isfinite(l) and torch.isfinite(s.grad).all()
    assert torch.isfinite(pairwise_accuracy(s, rk))

def test_training_on_the_loss_recovers_the_teacher_order():
    "Gradient descent on bt_loss from random scores reaches pairwise accuracy 1 on consistent rankings."
    g = torch.Generator().manual_seed(1)
    truth = torch.randn(32, 5, generator=g)
    rk = truth.argsort(1, descending=True)
    s = torch.randn(32, 5, generator=g).requires_grad_()
    opt = torch.optim.SGD([s], lr=0.5)
    acc0 = pairwise_accuracy(s, rk).item()
    for _ in range(200):
        opt.zero_grad(); bt_loss(s, rk, reduction='sum').backward(); opt.step()
    assert acc0 < 0.8 and pairwise_accuracy(s, rk).item() == 1.0

def test_ties_half_pulls_scores_together_and_skip_ignores_them():
    s = torch.tensor([[1.0, -1.0]], requires_grad=True)
    lv = torch.tensor([[0, 0]])
    opt = torch.optim.SGD([s], lr=0.5)
    for _ in range(200):
        opt.zero_grad(); bt_loss(s, levels=lv).backward(); opt.step()
    assert abs((s[0, 0] - s[0, 1]).item()) < 1e-3
    assert bt_loss(s, levels=lv, ties='skip').item() == 0.0
    with pytest.raises(ValueError, match="no pairs to compare"):
        bt_loss(s, levels=lv, ties='skip', reduction='mean_pairs')
    # teacher ties are not counted by the accuracy
    assert pairwise_accuracy(torch.tensor([[3., 2., 1.]]), levels=torch.tensor([[0, 0, 1]])).item() == 1.0

def test_levels_absent_and_unranked():
    s = torch.tensor([[0.5, 0.1, float('nan'), -0.2]], dtype=torch.float64)
    lv = torch.tensor([[UNRANKED, 0, ABSENT, UNRANKED]])
    mask = torch.tensor([[True, True, False, True]])
    expect = -F.logsigmoid(s[0, 1] - s[0, 0]) - F.logsigmoid(s[0, 1] - s[0, 3])
    assert bt_loss(s, levels=lv, mask=mask).item() == pytest.approx(expect.item(), rel=1e-12)

def test_item_and_pair_weights_agree():
    g = torch.Generator().manual_seed(3)
    s = torch.randn(4, 5, dtype=torch.float64, generator=g)
    rk = torch.stack([torch.randperm(5, generator=g) for _ in range(4)])
    w = torch.rand(4, 5, dtype=torch.float64, generator=g)
    torch.testing.assert_close(bt_loss(s, rk, weights=w), bt_loss(s, rk, weights=w[:, :, None] * w[:, None, :]))
    torch.testing.assert_close(bt_loss(s, rk, weights=torch.ones(4, 5, dtype=torch.float64)), bt_loss(s, rk))

def test_pair_loss_against_bce_and_group_form():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(30, generator=g), torch.randn(30, generator=g)
    y = torch.randint(0, 2, (30,), generator=g).float()
    w = torch.rand(30, generator=g)
    torch.testing.assert_close(bt_pair_loss(a, b, y, weights=w, reduction='sum'),
                               F.binary_cross_entropy_with_logits(a - b, 1 - y, weight=w, reduction='sum'))

# ---------------------------------------------------------------- loss: bad input

S = torch.randn(2, 5)
OK = torch.tensor([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]])

@pytest.mark.parametrize("call, exc, msg", [
    (lambda: bt_loss(S, torch.tensor([[0, 1, 2, 2, 4], [0, 1, 2, 3, 4]])), ValueError, "not permutations"),
    (lambda: bt_loss(S, torch.tensor([[0, 1, 2, 3, 4], [0, 1, 3, -1, 3]])), ValueError, r"group\(s\) \[1\]"),
    (lambda: bt_loss(S, torch.tensor([[1, 2, 3, 4, 5]] * 2)), ValueError, "1-based"),
    (lambda: bt_loss(S, torch.tensor([[0, 1, 2, 3, -2]] * 2)), ValueError, "outside 0..4"),
    (lambda: bt_loss(S, OK.float()), TypeError, r"rankings\.long\(\)"),
    (lambda: bt_loss(S, OK.bool()), TypeError, "integer slot indices"),
    (lambda: bt_loss(S, torch.tensor([[0, 1, 2, 3, 4, 0]] * 2)), ValueError, "only k = 5 items"),
    (lambda: bt_loss(S, torch.tensor([[-1, 0, 1, 2, 3]] * 2)), ValueError, "padding before real entries"),
    (lambda: bt_loss(S, torch.tensor([[-1] * 5] * 2)), ValueError, "are empty"),
    (lambda: bt_loss(S, OK[:1]), ValueError, "one ranking per row"),
    (lambda: bt_loss(S, OK[0]), ValueError, r"shape \[B, m\]"),
    (lambda: bt_loss(S[0], OK), ValueError, r"scores\[None\]"),
    (lambda: bt_loss(torch.randn(2, 1), torch.tensor([[0], [0]])), ValueError, "k >= 2"),
    (lambda: bt_loss(S.long(), OK), TypeError, "float tensor"),
    (lambda: bt_loss(S.numpy(), OK), TypeError, "torch tensor"),
    (lambda: bt_loss(torch.tensor([[0., 1, float('inf'), 2, 3]] * 2), OK), ValueError, "NaN or infinite"),
    (lambda: bt_loss(S, OK, mask=torch.ones(2, 4, dtype=torch.bool)), ValueError, "mask shape"),
    (lambda: bt_loss(S, OK, mask=torch.ones(2, 5)), TypeError, "bool tensor"),
    (lambda: bt_loss(S, OK, mask=torch.tensor([[True] * 4 + [False]] * 2)), ValueError, "name a padding slot"),
    (lambda: bt_loss(S, torch.tensor([[0, -1, -1, -1, -1]] * 2), mask=torch.tensor([[True] + [False] * 4] * 2)),
     ValueError, "fewer than 2 real items"),
    (lambda: bt_loss(S, OK, weights=torch.ones(5)), ValueError, "weights must be per item"),
    (lambda: bt_loss(S, OK, weights=-torch.ones(2, 5)), ValueError, "non-negative"),
    (lambda: bt_loss(S, OK, levels=torch.zeros(2, 5, dtype=torch.long)), ValueError, "exactly one of"),
    (lambda: bt_loss(S, levels=torch.zeros(2, 4, dtype=torch.long)), ValueError, "levels shape"),
    (lambda: bt_loss(S, levels=torch.zeros(2, 5)), TypeError, r"levels\.long\(\)"),
    (lambda: bt_loss(S, OK, ties='random'), ValueError, "ties must be"),
    (lambda: bt_loss(S, OK, reduction='avg'), ValueError, "reduction must be one of"),
    (lambda: pairwise_accuracy(S, OK, reduction='sum'), ValueError, "reduction must be"),
    (lambda: bt_pair_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3)), ValueError, "1-D of one length"),
    (lambda: bt_pair_loss(torch.zeros(2), torch.zeros(2), torch.tensor([0., 2.])), ValueError, "outcome must be 0"),
    (lambda: bt_pair_loss(torch.tensor([float('nan'), 0.]), torch.zeros(2), torch.zeros(2)), ValueError, "NaN"),
    (lambda: bt_loss_paper(S, OK[:, :3]), ValueError, "use bt_loss for partial"),
    (lambda: bt_loss_paper(S, torch.tensor([[0, 0, 1, 2, 3]] * 2)), ValueError, "not permutations"),
    (lambda: inverse_frequency_weights(np.array([1, 2, 3])), ValueError, r"\[G, k\]"),
    (lambda: inverse_frequency_weights(np.array([[0, 9]]), n_items=5), ValueError, "n_items = 5"),
    (lambda: inverse_frequency_weights(np.array([[0, -1]])), ValueError, ">= 0"),
])
def test_loss_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg): call()

def test_bad_ranking_message_names_the_group_and_shows_it():
    rk = OK.clone(); rk[1] = torch.tensor([4, 4, 2, 1, 0])
    with pytest.raises(ValueError) as e: bt_loss(S, rk)
    assert "group(s) [1]" in str(e.value) and "[[4, 4, 2, 1, 0]]" in str(e.value)

def test_inverse_frequency_weights_mean_one_and_order():
    idx = np.random.default_rng(0).integers(0, 30, size=(200, 5))
    w = inverse_frequency_weights(idx)
    assert w.shape == (200, 5) and w.mean().item() == pytest.approx(1.0, abs=1e-6)
    counts = np.bincount(idx.ravel(), minlength=30)
    # weights fall as counts rise, and are equal for equal counts
    flat_w, flat_c = w.numpy().ravel(), counts[idx.ravel()]
    for c1, c2 in [(a, b) for a in np.unique(flat_c) for b in np.unique(flat_c) if a < b][:20]:
        assert flat_w[flat_c == c1].min() > flat_w[flat_c == c2].max()


# ---------------------------------------------------------------- loss: Plackett–Luce

def _pl_ref(s, rankings, k_real=None, scale=1.0):
    "Per-group PL loss by a python loop: each pick is a softmax over the real items not yet placed."
    out = []
    for b in range(len(s)):
        left = list(range(s.shape[1] if k_real is None else k_real[b]))
        tot = 0.0
        for i in [x for x in list(rankings[b]) if x >= 0]:
            tot -= scale * float(s[b, i]) - math.log(sum(math.exp(scale * float(s[b, j])) for j in left))
            left.remove(i)
        out.append(tot)
    return out

@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_pl_any_k_matches_loop(k):
    g = torch.Generator().manual_seed(10 + k)
    s = torch.randn(6, k, dtype=torch.float64, generator=g)
    rk = torch.stack([torch.randperm(k, generator=g) for _ in range(6)])
    np.testing.assert_allclose(pl_loss(s, rk, scale=1.7, reduction='none').numpy(), _pl_ref(s, rk.tolist(), scale=1.7), rtol=1e-10)
    assert pl_loss(s, rk).item() == pytest.approx(np.mean(_pl_ref(s, rk.tolist())), rel=1e-12)
    assert pl_loss(s, rk, reduction='sum').item() == pytest.approx(np.sum(_pl_ref(s, rk.tolist())), rel=1e-12)

def test_pl_partial_rankings():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 6, dtype=torch.float64, generator=g)
    rk = torch.tensor([[4, 1, -1, -1, -1, -1], [0, 5, 2, -1, -1, -1], [3, -1, -1, -1, -1, -1], [5, 4, 3, 2, 1, -1]])
    np.testing.assert_allclose(pl_loss(s, rk, reduction='none').numpy(), _pl_ref(s, rk.tolist()), rtol=1e-10)
    # top-1 is softmax cross-entropy over the whole group; k-1 items equal the full ranking (the last pick is forced)
    torch.testing.assert_close(pl_loss(s, rk[:, :1], scale=3.0), F.cross_entropy(3.0 * s, rk[:, 0]))
    full = torch.cat([rk[3:, :5], torch.tensor([[0]])], 1)
    torch.testing.assert_close(pl_loss(s[3:], rk[3:]), pl_loss(s[3:], full))
    # numpy / list rankings are accepted like bt_loss's
    torch.testing.assert_close(pl_loss(s, rk.numpy()), pl_loss(s, rk))
    torch.testing.assert_close(pl_loss(s, rk.tolist()), pl_loss(s, rk))

def test_pl_padding_slots_and_mask():
    g = torch.Generator().manual_seed(2)
    s4 = torch.randn(3, 4, dtype=torch.float64, generator=g)
    r4 = torch.stack([torch.randperm(4, generator=g) for _ in range(3)])
    s6 = torch.cat([s4, torch.full((3, 2), float('nan'), dtype=torch.float64)], 1)
    m6 = torch.tensor([[True] * 4 + [False] * 2] * 3)
    torch.testing.assert_close(pl_loss(s6, r4, mask=m6), pl_loss(s4, r4))
    s6 = s6.clone().requires_grad_(True)
    pl_loss(s6, torch.cat([r4, torch.full((3, 2), -1)], 1), mask=m6).backward()
    assert torch.isfinite(s6.grad).all() and (s6.grad[:, 4:] == 0).all()

@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_pl_equals_bt_for_k2(scale):
    g = torch.Generator().manual_seed(3)
    s = torch.randn(20, 2, dtype=torch.float64, generator=g)
    first = torch.randint(0, 2, (20, 1), generator=g)
    rk = torch.cat([first, 1 - first], 1)
    torch.testing.assert_close(pl_loss(s, rk, scale=scale, reduction='none'), bt_loss(s, rk, scale=scale, reduction='none'))
    torch.testing.assert_close(pl_loss(s, rk[:, :1], scale=scale), bt_loss(s, rk[:, :1], scale=scale))   # top-1 of 2

def test_pl_gradcheck_and_extreme_scores():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    rk = torch.stack([torch.randperm(5, generator=g) for _ in range(3)]); rk[0, 3:] = -1
    assert torch.autograd.gradcheck(lambda v: pl_loss(v, rk, scale=2.0), (x,))
    s = torch.tensor([[1e4, -1e4, 0., 5e3, -5e3]], requires_grad=True)
    for r, big in [([[0, 3, 2, 4, 1]], False), ([[1, 4, 2, 3, 0]], True)]:
        s.grad = None
        loss = pl_loss(s, torch.tensor(r), scale=20.0); loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
        assert (loss.item() > 1e4) == big

def test_pl_training_recovers_the_teacher_order():
    g = torch.Generator().manual_seed(5)
    target = torch.randperm(6, generator=g)[None]
    s = torch.zeros(1, 6, requires_grad=True)
    opt = torch.optim.SGD([s], lr=0.5)
    for _ in range(200):
        opt.zero_grad(); pl_loss(s, target).backward(); opt.step()
    assert s.argsort(1, descending=True).tolist() == target.tolist()

@pytest.mark.parametrize("call, exc, msg", [
    (lambda: pl_loss(S, torch.tensor([[0, 1, 2, 2, 4], [0, 1, 2, 3, 4]])), ValueError, "not permutations"),
    (lambda: pl_loss(S, torch.tensor([[1, 2, 3, 4, 5]] * 2)), ValueError, "1-based"),
    (lambda: pl_loss(S, OK.float()), TypeError, r"rankings\.long\(\)"),
    (lambda: pl_loss(S, torch.tensor([[-1, 0, 1, 2, 3]] * 2)), ValueError, "padding before real entries"),
    (lambda: pl_loss(S, torch.tensor([[-1] * 5] * 2)), ValueError, "are empty"),
    (lambda: pl_loss(S, OK[:1]), ValueError, "one ranking per row"),
    (lambda: pl_loss(S[0], OK), ValueError, r"scores\[None\]"),
    (lambda: pl_loss(S.long(), OK), TypeError, "float tensor"),
    (lambda: pl_loss(torch.tensor([[0., 1, float('nan'), 2, 3]] * 2), OK), ValueError, "NaN or infinite"),
    (lambda: pl_loss(S, OK, mask=torch.tensor([[True] * 4 + [False]] * 2)), ValueError, "name a padding slot"),
    (lambda: pl_loss(S, OK, reduction='mean_pairs'), ValueError, "reduction must be 'mean', 'sum' or 'none'"),
    (lambda: pl_loss(S, None), ValueError, "pl_loss needs rankings"),
])
def test_pl_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg): call()


# ---------------------------------------------------------------- sampling

def _fn(P=40, N=300, seed=0):
    rng = np.random.default_rng(seed)
    pe, ie = rng.normal(size=(P, 8)), rng.normal(size=(N, 8))
    return lambda idx: pe[np.asarray(idx)] @ ie.T

def test_score_fn_receives_the_given_persona_ids():
    seen = []
    table = {10: 0, 20: 1, 35: 2}
    base = _fn(P=3)
    def fn(idx):
        seen.extend(np.asarray(idx).tolist()); return base([table[i] for i in idx])
    g = PreferenceSampler(fn, np.array([10, 20, 35]), 300).sample(50, 0)
    assert set(g.persona) <= {10, 20, 35} and sorted(seen) == sorted(set(g.persona.tolist()))

def test_torch_score_fn_is_accepted():
    base = _fn()
    fn = lambda idx: torch.tensor(base(idx), requires_grad=True)
    g1 = PreferenceSampler(fn, 40, 300).sample(20, 1)
    g2 = PreferenceSampler(base, 40, 300).sample(20, 1)
    np.testing.assert_array_equal(g1.items, g2.items)

def test_generator_stream_continues():
    s = PreferenceSampler(_fn(), 40, 300)
    rng = np.random.default_rng(3)
    a, b = s.sample(10, rng), s.sample(10, rng)
    assert not np.array_equal(a.items, b.items)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(s.sample(10, rng).items, a.items)

def test_catalog_exactly_group_size():
    fn = lambda idx: np.tile(np.array([0., 0.1, 0.5, 0.97, 1.0]), (len(idx), 1))
    for paper in (False, True):
        g = PreferenceSampler(fn, 3, 5, paper_duplicates=paper).sample(30, 0)
        if not paper:
            assert all(sorted(r) == [0, 1, 2, 3, 4] for r in g.items.tolist())
    g = UniformSampler(3, 5).sample(30, 0)
    assert all(sorted(r) == [0, 1, 2, 3, 4] for r in g.items.tolist())

def test_custom_edges_and_counts():
    s = np.linspace(0, 1, 101)
    items, bins, fb = preference_group(s, 0, edges=(0.5,), counts=(2, 3))
    assert bins.tolist() == [1, 1, 2, 2, 2] and not fb.any()
    assert (s[items[:2]] < 0.5).all() and (s[items[2:]] >= 0.5).all()
    items, bins, fb = preference_group(s, 0, edges=(0.5, 0.9), counts=(0, 2, 1))
    assert bins.tolist() == [2, 2, 3] and ((s[items[:2]] >= 0.5) & (s[items[:2]] < 0.9)).all() and s[items[2]] >= 0.9

def test_bin4_short_falls_back_both_slots_even_with_one_item():
    s = np.r_[np.zeros(10), np.linspace(0.75, 0.92, 5), 1.0]    # bins 1, 2, 3 populated; bin 4 = one item
    for seed in range(30):
        items, bins, fb = preference_group(s, seed)
        assert fb.tolist() == [False, False, False, True, True] and len(set(items)) == 5

def test_shuffle_keeps_slot_bins_and_varies_positions():
    g = PreferenceSampler(_fn(), 40, 300, shuffle=True).sample(200, 0)
    assert all(sorted(r) == [1, 2, 3, 4, 4] for r in g.bins.tolist())
    assert len({tuple(r) for r in g.bins.tolist()}) > 10 and g.order_mode == 'shuffled'

def test_to_frame_round_trip():
    g = PreferenceSampler(_fn(), 40, 300).sample(12, 0)
    df = g.to_frame()
    assert len(df) == len(g) == 12
    assert list(df.columns) == ['persona', 'items', 'bins', 'fallback', 'order_mode', 'sampler']
    np.testing.assert_array_equal(np.array(df['items'].tolist()), g.items)

def test_make_sampler_uniform_uses_group_size_from_counts():
    s = make_sampler(SamplerConfig(kind='uniform', counts=(1, 1, 1, 3)), None, 10, 100)
    assert s.sample(4, 0).items.shape == (4, 6)
    with pytest.raises(ValueError, match="needs a score_fn"): make_sampler(SamplerConfig(), None, 10, 100)

@pytest.mark.parametrize("call, exc, msg", [
    (lambda: PreferenceSampler(_fn(), 40, 0), ValueError, "catalog is empty"),
    (lambda: PreferenceSampler(_fn(), 40, 2.5), ValueError, "positive int"),
    (lambda: PreferenceSampler(_fn(), 40, 3), ValueError, "needs 5 distinct items"),
    (lambda: PreferenceSampler(_fn(), 0, 300), ValueError, "at least one training persona"),
    (lambda: PreferenceSampler(_fn(), np.array([0.5, 1.5]), 300), TypeError, "must be integers"),
    (lambda: PreferenceSampler(_fn(), np.zeros((2, 2), int), 300), ValueError, "1-D array"),
    (lambda: PreferenceSampler(_fn(), 40, 300, edges=(0.7, 1.2, 0.95)), ValueError, "in \\(0, 1\\)"),
    (lambda: PreferenceSampler(_fn(), 40, 300, counts=(1, 1, 1, -2)), ValueError, "non-negative integers"),
    (lambda: PreferenceSampler(_fn(), 40, 300, counts=(1, 0, 0, 0)), ValueError, "at least 2 items"),
    (lambda: PreferenceSampler(_fn(), 40, 300, chunk=0), ValueError, "chunk must be"),
    (lambda: PreferenceSampler(_fn(), 40, 300).sample(2.0), ValueError, "n_groups must be a positive int"),
    (lambda: PreferenceSampler(lambda idx: np.zeros(300), 4, 300).sample(3, 0), ValueError, "returned shape \\(300,\\)"),
    (lambda: PreferenceSampler(lambda idx: np.zeros((len(idx) + 1, 300)), 4, 300).sample(3, 0), ValueError, "must return"),
    (lambda: PreferenceSampler(lambda idx: np.full((len(idx), 300), np.inf), 4, 300).sample(3, 0), ValueError, "NaN or infinite"),
    (lambda: preference_group(np.zeros((2, 10))), ValueError, "one persona's \\[N\\] vector"),
    (lambda: preference_group(np.r_[0., np.nan, 1, 2, 3, 4]), ValueError, "NaN"),
    (lambda: range_bins(np.zeros((3, 0))), ValueError, "catalog empty"),
    (lambda: UniformSampler(10, 100, group_size=1), ValueError, "at least 2 items"),
    (lambda: UniformSampler(10, 0), ValueError, "catalog is empty"),
    (lambda: make_sampler(SamplerConfig(kind='x'), _fn(), 40, 300), ValueError, "'preference', 'uniform' or 'uncertainty'"),
    (lambda: make_sampler(SamplerConfig(kind='uncertainty'), None, 40, 300), ValueError, "uncertainty sampler needs a score_fn"),
    (lambda: SamplerConfig(kind='uncertainty', top=0), ValueError, r"SamplerConfig\.top must be in \[1, inf\)"),
    (lambda: UncertaintySampler(_fn(), 40, 300, top=0), ValueError, "top must be a positive int"),
    (lambda: UncertaintySampler(_fn(), 40, 300, top=2.5), ValueError, "top must be a positive int"),
    (lambda: UncertaintySampler(_fn(), 40, 300, group_size=1), ValueError, "at least 2 items"),
    (lambda: UncertaintySampler(_fn(), 40, 4), ValueError, "needs 5 distinct items"),
    (lambda: UncertaintySampler(_fn(), 40, 0), ValueError, "catalog is empty"),
    (lambda: UncertaintySampler(_fn(), [], 300), ValueError, "non-empty 1-D array"),
    (lambda: UncertaintySampler(_fn(), 40, 300, chunk=0), ValueError, "chunk must be"),
    (lambda: UncertaintySampler(_fn(), 40, 300).sample(0), ValueError, "n_groups must be a positive int"),
    (lambda: UncertaintySampler(lambda idx: np.zeros((len(idx), 299)), 4, 300).sample(3, 0), ValueError, "must return"),
    (lambda: UncertaintySampler(lambda idx: np.full((len(idx), 300), np.nan), 4, 300).sample(3, 0), ValueError, "NaN or infinite"),
])
def test_sampling_bad_input(call, exc, msg):
    with pytest.raises(exc, match=msg): call()

def test_nan_message_names_only_bad_personas():
    def fn(idx):
        out = np.zeros((len(idx), 50)); out[np.isin(idx, [7, 9])] = np.nan; return out
    with pytest.raises(ValueError) as e: PreferenceSampler(fn, np.arange(10), 50).sample(500, 0)
    assert "[7, 9]" in str(e.value)

def test_uniform_and_preference_share_the_persona_stream():
    "Same seed, same personas: the ablation compares item choice only."
    a = PreferenceSampler(_fn(), 40, 300).sample(100, 9)
    b = UniformSampler(40, 300).sample(100, 9)
    np.testing.assert_array_equal(a.persona, b.persona)
    assert isinstance(b, SampledGroups) and (b.bins == 0).all() and not b.fallback.any()

def test_range_bins_edges_belong_to_the_upper_bin():
    assert range_bins([0.0, 0.7, 0.9, 0.95, 1.0, 0.69]).tolist() == [1, 2, 3, 4, 4, 1]
    assert range_bins([[2.0, 2.7, 2.9, 2.95, 3.0]]).tolist() == [[1, 2, 3, 4, 4]]   # edges are relative to min/max

def test_fallbacks_never_duplicate_but_paper_mode_does():
    fn = lambda idx: np.tile(np.array([0., 0.1, 0.2, 0.3, 1.0, 0.99]), (len(idx), 1))   # bins 2 and 3 empty
    ours = PreferenceSampler(fn, 5, 6).sample(400, 0)
    paper = PreferenceSampler(fn, 5, 6, paper_duplicates=True).sample(400, 0)
    assert all(len(set(r)) == 5 for r in ours.items.tolist())
    assert sum(len(set(r)) < 5 for r in paper.items.tolist()) > 50
    assert ours.fallback[:, 1:3].all() and not ours.fallback[:, [0, 3, 4]].any()


# ---------------------------------------------------------------- uncertainty sampler

def _positions(fn, persona, items):
    "Each item's position in its persona's score order (0 = the student's best)."
    S = fn(persona)
    ranks = np.argsort(np.argsort(-S, axis=1, kind='stable'), axis=1, kind='stable')
    return np.take_along_axis(ranks, items, 1)

@pytest.mark.parametrize("top, size", [(50, 5), (10, 3), (3, 5), (300, 4)])
def test_uncertainty_groups_are_distinct_adjacent_and_in_the_top(top, size):
    fn = _fn()
    g = UncertaintySampler(fn, 40, 300, group_size=size, top=top).sample(300, 0)
    assert g.items.shape == (300, size) and g.sampler == 'uncertainty' and g.order_mode == 'shuffled'
    assert all(len(set(r)) == size for r in g.items.tolist())
    pos = _positions(fn, g.persona, g.items)
    assert pos.max() < max(top, size) and (np.ptp(pos, 1) == size - 1).all()   # adjacent, inside the top region
    assert (g.bins == 0).all() and not g.fallback.any() and isinstance(g, SampledGroups)

def test_uncertainty_anchors_cover_the_top_region_and_orders_vary():
    fn = _fn()
    g = UncertaintySampler(fn, 40, 300, top=30).sample(3000, 1)
    pos = _positions(fn, g.persona, g.items)
    assert set(np.unique(pos.min(1))) == set(range(26))            # every window start 0..top-size occurs
    assert len({tuple(np.argsort(r)) for r in pos.tolist()}) > 60   # shown order is random, not the student's

def test_uncertainty_deterministic_for_a_seed_and_chunk_free():
    fn = _fn()
    a, b = UncertaintySampler(fn, 40, 300).sample(100, 7), UncertaintySampler(fn, 40, 300).sample(100, 7)
    np.testing.assert_array_equal(a.items, b.items); np.testing.assert_array_equal(a.persona, b.persona)
    np.testing.assert_array_equal(UncertaintySampler(fn, 40, 300, chunk=3).sample(100, 7).items, a.items)
    assert not np.array_equal(UncertaintySampler(fn, 40, 300).sample(100, 8).items, a.items)
    np.testing.assert_array_equal(a.persona, PreferenceSampler(fn, 40, 300).sample(100, 7).persona)   # same persona stream

def test_uncertainty_scores_each_sampled_persona_once_and_accepts_torch():
    seen, base = [], _fn()
    def fn(idx):
        seen.extend(np.asarray(idx).tolist()); return torch.tensor(base(idx))
    g = UncertaintySampler(fn, np.array([3, 5, 11]), 300, chunk=2).sample(40, 0)
    assert sorted(seen) == sorted(set(g.persona.tolist())) and set(seen) <= {3, 5, 11}

def test_make_sampler_uncertainty():
    s = make_sampler(SamplerConfig(kind='uncertainty', counts=(1, 1, 1, 3), top=12), _fn(), 40, 300, chunk=5)
    assert isinstance(s, UncertaintySampler) and (s.group_size, s.top, s.chunk) == (6, 12, 5)
    assert SamplerConfig.from_json(SamplerConfig(kind='uncertainty', top=7).to_json()).top == 7
