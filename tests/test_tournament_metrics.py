"Bad inputs and edge cases of paper_distill.tournament and paper_distill.metrics."
import numpy as np
import pandas as pd
import pytest

from paper_distill.tournament import tournament, run_tournaments, tournament_table, n_calls, n_rounds, TournamentError
from paper_distill.metrics import (percentile_rank, winner_position, winner_rank, mpr, topk_hit, summarize,
                                   bootstrap_ci, paired_bootstrap)


class Judge:
    "Noise-free teacher over a utility vector indexed by the image it is shown; logs every request."
    def __init__(self, utility): self.u, self.log = np.asarray(utility, dtype=float), []
    def rank(self, persona, images):
        self.log.append(('rank', persona, list(images)))
        return [int(i) for i in np.argsort(-self.u[np.asarray(images, dtype=int)], kind='stable')]
    def pair(self, persona, images):
        self.log.append(('pair', persona, list(images)))
        return int(self.u[int(images[1])] > self.u[int(images[0])])


class Answers(Judge):
    "A teacher that gives a fixed (possibly invalid) answer."
    def __init__(self, pair_ans=0, rank_ans=None): super().__init__(np.zeros(100)); self.pa, self.ra = pair_ans, rank_ans
    def pair(self, persona, images): self.log.append(images); return self.pa
    def rank(self, persona, images): self.log.append(images); return self.ra(len(images)) if callable(self.ra) else self.ra


# ---------------------------------------------------------------- tournament: bad inputs
@pytest.mark.parametrize('items,msg', [([], 'empty catalog'), (range(0), 'empty catalog'),
                                       (['only'], 'fewer items than a match needs'),
                                       ([3, 1, 3], 'duplicate item ids [3]')])
def test_bad_items(items, msg):
    with pytest.raises(TournamentError, match=msg.replace('[', r'\[').replace(']', r'\]')):
        tournament(items, 'p', Judge(np.arange(10)))


def test_unhashable_and_str_items():
    with pytest.raises(TypeError, match='hashable'): tournament([[0], [1]], 'p', Judge(np.arange(2)))
    with pytest.raises(TypeError, match='not a single str'): tournament('abc', 'p', Judge(np.arange(3)))


@pytest.mark.parametrize('k', [1, 0, -3, True, 2.5, '2'])
def test_bad_k(k):
    with pytest.raises(ValueError, match='k must be an int >= 2'): tournament(range(5), 'p', Judge(np.arange(5)), k=k)
    with pytest.raises(ValueError, match='k must be an int >= 2'): n_calls(5, k)


@pytest.mark.parametrize('kw,err,msg', [
    (dict(persona=''), TournamentError, 'non-empty str'), (dict(persona=None), TournamentError, 'non-empty str'),
    (dict(on_invalid='skip'), ValueError, "on_invalid must be 'raise' or 'first'"),
    (dict(ask='vote'), ValueError, "ask must be 'auto'"), (dict(ask='pair', k=3), ValueError, "ask='pair' needs k=2"),
    (dict(workers=0), ValueError, 'workers must be an int >= 1'), (dict(images=5), TypeError, 'images must be None'),
])
def test_bad_options(kw, err, msg):
    args = dict(persona='p'); args.update(kw)
    with pytest.raises(err, match=msg): tournament(range(4), teacher=Judge(np.arange(4)), **args)


def test_teacher_without_method():
    class RankOnly:
        def rank(self, persona, images): return list(range(len(images)))
    with pytest.raises(TypeError, match=r"has no \.pair\(persona, images\).*ask='rank'"): tournament(range(4), 'p', RankOnly())
    assert tournament(range(4), 'p', RankOnly(), ask='rank').n_calls == 3      # pairs asked through rank work
    with pytest.raises(TypeError, match=r'has no \.rank'): tournament(range(4), 'p', object(), k=3)


def test_missing_image():
    with pytest.raises(KeyError, match="no image for item 'c'"):
        tournament(['a', 'b', 'c', 'd'], 'p', Judge(np.arange(4)), images={'a': 0, 'b': 1, 'd': 3})


@pytest.mark.parametrize('ans', [2, -1, True, '1', None, 0.0, 1.5, [0]])
def test_invalid_pair_answer(ans):
    with pytest.raises(TournamentError, match=r'teacher\.pair gave an invalid answer .* expected 0 \(first image\) or 1'):
        tournament(range(4), 'p', Answers(pair_ans=ans))


@pytest.mark.parametrize('ans', [lambda n: list(range(n - 1)), lambda n: [0] * n, lambda n: list(range(1, n + 1)),
                                 lambda n: [float(i) for i in range(n)], lambda n: None, lambda n: '012',
                                 lambda n: [True] + [0] * (n - 1), lambda n: list(range(n)) + [0]])
def test_invalid_rank_answer(ans):
    with pytest.raises(TournamentError, match=r'teacher\.rank gave an invalid answer .* permutation of 0\.\.2'):
        tournament(range(6), 'p', Answers(rank_ans=ans), k=3)


def test_invalid_answer_paper_rule():
    "on_invalid='first': the first item of each group wins, the match is recorded invalid, nothing raises."
    t = Answers(pair_ans=7)
    res = tournament(range(9), 'p', t, on_invalid='first', seed=3)
    calls = res.matches[~res.matches.bye]
    assert res.n_invalid == res.n_calls == 8 == len(t.log)
    assert all(w == g[0] for w, g in zip(calls.winner, calls['items'])) and not calls.valid.any()
    assert list(calls.answer) == [7] * 8


def test_teacher_exception_propagates():
    class Broken(Judge):
        def pair(self, persona, images): raise ConnectionError('teacher down')
    for rule in ('raise', 'first'):
        with pytest.raises(ConnectionError, match='teacher down'): tournament(range(4), 'p', Broken(np.arange(4)), on_invalid=rule)


def test_n_calls_bad_n():
    with pytest.raises(ValueError, match='n_items must be >= 1'): n_calls(0)
    with pytest.raises(ValueError, match='n_items must be >= 1'): n_rounds(-2, 3)
    assert (n_calls(1, 5), n_rounds(1, 5)) == (0, 0)


def test_run_tournaments_bad_input():
    with pytest.raises(TypeError, match='not a single str'): run_tournaments('persona', range(3), Judge(np.arange(3)))
    with pytest.raises(ValueError, match='seed must be a non-negative int'): run_tournaments(['p'], range(3), Judge(np.arange(3)), seed=-1)
    with pytest.raises(TournamentError, match='empty catalog'): run_tournaments(['p'], [], Judge(np.arange(3)))


# ---------------------------------------------------------------- tournament: edge cases
def test_two_items_one_call():
    j = Judge([0.0, 1.0]); res = tournament([0, 1], 'p', j)
    assert (res.winner, res.n_calls, res.n_rounds, len(j.log)) == (1, 1, 1, 1)
    assert res.elimination().to_dict('index') == {1: {'round_out': 2, 'wins': 1}, 0: {'round_out': 1, 'wins': 0}}


@pytest.mark.parametrize('N,k,calls', [(5, 5, 1), (3, 5, 1), (6, 5, 2), (7, 5, 3), (11, 5, 3), (4096, 5, 1026), (4096, 2, 4095)])
def test_kway_groups(N, k, calls):
    "k >= N: one partial call with every item; a leftover of 1 is a bye, of >= 2 a (smaller) call."
    u = np.random.default_rng(N).normal(size=N); j = Judge(u)
    res = tournament(range(N), 'p', j, k=k, seed=0)
    assert res.winner == int(np.argmax(u)) and res.n_calls == len(j.log) == calls == n_calls(N, k)
    sizes = [len(imgs) for _, _, imgs in j.log]
    assert max(sizes) <= k and min(sizes) >= 2
    if N <= k: assert sizes == [N]


def test_kway_partial_pair_goes_to_rank():
    "With k > 2 a leftover pair is ranked, never sent to .pair."
    j = Judge(np.arange(7.0)); tournament(range(7), 'p', j, k=5, seed=1)
    assert [kind for kind, _, _ in j.log] == ['rank'] * 3
    assert [len(i) for _, _, i in j.log] == [5, 2, 2]      # round 1: a group of 5 and a leftover pair; round 2: the final pair


def test_images_lookup_reaches_teacher_in_group_order():
    ids = ['x', 'y', 'z', 'w']; img = {'x': 3, 'y': 0, 'z': 2, 'w': 1}
    j = Judge([10.0, 0.0, 5.0, 7.0])          # utility per image value
    res = tournament(ids, 'persona text', j, images=img, shuffle_first=False, seed=0)
    assert j.log[0] == ('pair', 'persona text', [3, 0]) and j.log[1] == ('pair', 'persona text', [2, 1])
    assert res.winner == 'y'                  # image 0 has the highest utility
    res2 = tournament(ids, 'persona text', Judge([10.0, 0.0, 5.0, 7.0]), images=lambda i: img[i])
    assert res2.winner == 'y'


def test_string_ids_and_table():
    u = {'a': 1.0, 'b': 3.0, 'c': 2.0}
    class ById:
        def pair(self, persona, images): return int(u[images[1]] > u[images[0]])
    rs = run_tournaments(['p1', 'p2'], list(u), ById(), progress=False)
    tab = tournament_table(rs)
    assert list(tab.winner) == ['b', 'b'] and list(tab.n_calls) == [2, 2] and list(tab.n_invalid) == [0, 0]


def test_generator_seed_not_recorded_but_replays():
    j = Judge(np.random.default_rng(0).normal(size=30))
    a = tournament(range(30), 'p', j, seed=np.random.default_rng(5))
    b = tournament(range(30), 'p', j, seed=np.random.default_rng(5))
    assert a.seed is None
    pd.testing.assert_frame_equal(a.matches, b.matches)


# ---------------------------------------------------------------- metrics: bad inputs
def test_empty_catalog_scores():
    with pytest.raises(ValueError, match='empty catalog'): percentile_rank(np.zeros((3, 0)), [0, 0, 0])
    with pytest.raises(ValueError, match='empty catalog'): percentile_rank([], 0)
    with pytest.raises(ValueError, match='no personas'): percentile_rank(np.zeros((0, 5)), np.zeros(0, dtype=int))


def test_nan_scores_named():
    s = np.zeros((5, 4)); s[1, 2] = s[3, 0] = s[3, 1] = np.nan
    with pytest.raises(ValueError, match=r'NaN for persona row\(s\) \[1, 3\] \(3 values\)'): mpr(s, [0] * 5)
    with pytest.raises(ValueError, match='NaN'): topk_hit(s, [0] * 5, 1)
    with pytest.raises(ValueError, match='NaN'): summarize(s, [0] * 5)


@pytest.mark.parametrize('w', [4, -1, 100])
def test_winner_out_of_range(w):
    with pytest.raises(IndexError, match=rf'winner index {w} for persona row 1 is out of range for N=4'):
        percentile_rank(np.zeros((2, 4)), [0, w])


@pytest.mark.parametrize('w,msg', [([0.0, 1.0], 'integer column indices'), ([True, False], 'integer column indices'),
                                   (['a', 'b'], 'integer column indices'), ([0, 1, 2], r'3 winner\(s\) for 2 persona row')])
def test_bad_winners(w, msg):
    with pytest.raises((TypeError, ValueError), match=msg): percentile_rank(np.zeros((2, 4)), w)


def test_bad_scores_and_options():
    with pytest.raises(TypeError, match='scores must be numeric'): percentile_rank([['a', 'b']], [0])
    with pytest.raises(ValueError, match=r'\(N,\) for one persona or \(P, N\)'): percentile_rank(np.zeros((2, 2, 2)), [0, 0])
    with pytest.raises(ValueError, match="convention must be 'asc' or 'desc'"): percentile_rank([1.0, 2.0], 0, 'up')
    with pytest.raises(ValueError, match='ties must be one of'): percentile_rank([1.0, 2.0], 0, ties='dense')
    with pytest.raises(ValueError, match='ties must be one of'): topk_hit([1.0, 2.0], 0, 1, ties='dense')
    with pytest.raises(ValueError, match="rule must be 'correct' or 'paper'"): topk_hit([1.0, 2.0], 0, 1, rule='x')
    for k in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match='k must be an int >= 1'): topk_hit([1.0, 2.0], 0, k)


@pytest.mark.parametrize('call,msg', [
    (lambda: paired_bootstrap([0.1, 0.2, 0.3], [0.1, 0.2]), 'a has 3 personas and b has 2'),
    (lambda: paired_bootstrap([0.1, np.nan], [0.1, 0.2]), r'a contains NaN at persona\(s\) \[1\]'),
    (lambda: bootstrap_ci([0.5]), 'at least 2 personas'),
    (lambda: bootstrap_ci(np.zeros((2, 2))), 'must be 1-D'),
    (lambda: bootstrap_ci([0.1, 0.2], level=1.5), r'level must be in \(0, 1\)'),
    (lambda: bootstrap_ci([0.1, 0.2], n_boot=0), 'n_boot must be an int >= 1'),
    (lambda: bootstrap_ci([0.1, 0.2], stat='mode'), "stat must be 'mean', 'median' or a callable"),
])
def test_bootstrap_bad_input(call, msg):
    with pytest.raises(ValueError, match=msg): call()


# ---------------------------------------------------------------- metrics: edge cases
def test_single_candidate():
    "N = 1: the winner is trivially first; 'asc' says 0 (its range is [0, (N-1)/N]), 'desc' says 1."
    assert percentile_rank([0.3], 0) == 0.0 and percentile_rank([0.3], 0, 'desc') == 1.0
    assert topk_hit([0.3], 0, 1) == 1.0 and topk_hit([0.3], 0, 1, rule='paper') == 0.0


def test_infinite_scores_are_ordered():
    s = np.array([[0.0, np.inf, -np.inf, 1.0]])
    assert winner_rank(s, [1]).tolist() == [0.0] and winner_position(s, [2]).tolist() == [0.0]
    assert percentile_rank(s, [3], 'desc').tolist() == [0.75]


def test_ties_rules_on_a_tied_block():
    "Scores 5,3,3,3,1: the winner (index 2) sits in a block of 3 occupying descending ranks 1..3."
    s = np.array([5.0, 3.0, 3.0, 3.0, 1.0])
    assert {t: float(winner_rank(s, 2, t)) for t in ('average', 'min', 'max', 'ordinal')} == \
           {'average': 2.0, 'min': 3.0, 'max': 1.0, 'ordinal': 2.0}
    assert float(topk_hit(s, 2, 2)) == pytest.approx(1 / 3)          # one of the block's three slots is in the top 2
    assert (float(topk_hit(s, 2, 2, 'max')), float(topk_hit(s, 2, 2, 'min'))) == (1.0, 0.0)


def test_summarize_one_persona_and_custom_ks():
    s = np.arange(10.0)
    row = summarize(s, 7, ks=(1, 3), name='m')
    assert list(row.index) == ['m'] and row.loc['m', 'n_personas'] == 1 and row.loc['m', 'n_candidates'] == 10
    assert row.loc['m', 'mpr'] == 0.7 and (row.loc['m', 'top1'], row.loc['m', 'top3']) == (0.0, 1.0)


def test_bootstrap_identical_systems_and_constant_values():
    x = np.random.default_rng(0).random(30)
    r = paired_bootstrap(x, x, n_boot=200)
    assert (r['diff'], r['lo'], r['hi'], r['se']) == (0.0, 0.0, 0.0, 0.0)
    c = bootstrap_ci(np.full(10, 0.7), n_boot=50)
    assert c['lo'] == c['hi'] == pytest.approx(0.7)
    assert paired_bootstrap(x, x[::-1], stat=lambda v, axis=None: np.max(v, axis=axis), n_boot=100)['diff'] == 0.0


def test_winner_columns_bad_input():
    from paper_distill.metrics import winner_columns
    assert winner_columns([10, 20, 30], [30, 10]).tolist() == [2, 0]
    with pytest.raises(ValueError, match='empty catalog'): winner_columns([], [1])
    with pytest.raises(KeyError, match='winner 99 for persona row 0 is not among the 3 candidate ids'): winner_columns([1, 2, 3], [99])


def test_tournament_then_metrics():
    "End to end on a toy world: tournament winners (ids) → columns → MPR of a perfect and a reversed scorer."
    rng = np.random.default_rng(1)
    ids = [f"item{i}" for i in rng.permutation(40)]
    u = {p: {i: float(v) for i, v in zip(ids, rng.normal(size=40))} for p in ('p0', 'p1', 'p2')}
    class T:
        def rank(self, persona, images): return [int(j) for j in np.argsort([-u[persona][i] for i in images], kind='stable')]
    from paper_distill.metrics import winner_columns
    rs = run_tournaments(list(u), ids, T(), k=4, progress=False)
    cols = winner_columns(ids, [r.winner for r in rs])
    scores = np.array([[u[p][i] for i in ids] for p in u])
    assert mpr(scores, cols, 'desc') == 1.0 and mpr(-scores, cols, 'asc') == 0.0
    assert [r.n_calls for r in rs] == [n_calls(40, 4)] * 3


def test_paper_bracket_reshuffles_winners_each_round():
    "shuffle_first=False: round 1 is catalog order (0,1),(2,3)…; later rounds are reshuffled with the seed."
    j = Judge(np.random.default_rng(0).normal(size=64))
    a, b = (tournament(range(64), 'p', j, shuffle_first=False, seed=s).matches for s in (0, 1))
    assert list(a.query('round == 1')['items']) == [(i, i + 1) for i in range(0, 64, 2)] == list(b.query('round == 1')['items'])
    assert list(a.query('round == 2')['items']) != list(b.query('round == 2')['items'])
