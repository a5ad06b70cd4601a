"""The playoff tournament (`tourneys.playoff_tournament`) with the package's own SimulatedTeacher answering through a real
teacher store: its calls are the formula's, its winner is a valid item, a noise-free teacher crowns the true best,
identical images play as one candidate (as `tournament.run_tournaments` handles them), and bad settings are refused."""
import numpy as np
import pytest

from paper_distill.prompts import ImageRef
from paper_distill.teacher import SimulatedTeacher
from paper_distill.tournament import TournamentError, n_calls, run_tournaments
from paper_distill.tourneys import n_calls_playoff, playoff_tournament, run_playoffs

PERSONAS = ['someone who loves bold colours', 'a commuter who wants plain dark clothes', 'a trail runner']


def world(n_items, seed=0):
    "Hash-only items with a random utility per persona: the refs a teacher sees and its utility function."
    rng = np.random.default_rng(seed)
    U = {p: rng.normal(size=n_items) for p in PERSONAS}
    refs = [ImageRef(f'{i:064x}') for i in range(n_items)]
    return refs, U, lambda persona, hashes: U[persona][[int(h, 16) for h in hashes]]


@pytest.mark.parametrize('n,k,keep,final', [(2, 10, 4, 10), (11, 3, 1, 1), (37, 5, 2, 4), (150, 10, 4, 10), (257, 7, 3, 6)])
def test_calls_equal_the_formula(tmp_path, n, k, keep, final):
    refs, U, utility = world(n)
    t = SimulatedTeacher(utility, tmp_path/'store', name='tourneys-test', temperature=0.5)
    for i, p in enumerate(PERSONAS):
        before = t.stats['calls']
        r = playoff_tournament(range(n), p, t, k=k, keep=keep, final=final, images=refs, seed=[0, i])
        assert t.stats['calls'] - before == r.n_calls == n_calls_playoff(n, k, keep, final)
        assert r.winner in range(n) and r.n_invalid == 0                       # a valid winner, every answer valid
    assert n_calls_playoff(4096) <= 4095 // 3                                  # the paper's size: within a third of pairwise
    assert n_calls_playoff(n, k, 1, 1) == n_calls(n, k)                        # keep 1, no round robin: the k-way tournament


def test_noise_free_teacher_finds_the_true_best(tmp_path):
    refs, U, utility = world(300, seed=1)
    t = SimulatedTeacher(utility, tmp_path/'store', name='tourneys-test', temperature=0)
    rs = run_playoffs(PERSONAS, range(300), t, images=refs, progress=False)
    assert [r.winner for r in rs] == [int(np.argmax(U[p])) for p in PERSONAS]
    again = run_playoffs(PERSONAS, range(300), t, images=refs, progress=False)   # replayed from the store: no new call
    assert [r.winner for r in again] == [r.winner for r in rs]
    assert t.stats['hits'] == sum(r.n_calls for r in again)


def test_duplicates_play_as_one_candidate(tmp_path):
    "Ids 40-49 show the same images as ids 0-9: the teacher sees each image once, and the result names the copies."
    refs, U, utility = world(40, seed=2)
    refs = refs + refs[:10]
    t = SimulatedTeacher(utility, tmp_path/'store', name='tourneys-test', temperature=0)
    ids = [f'sku{i:02d}' for i in range(50)]
    images = dict(zip(ids, refs))
    rs = run_playoffs(PERSONAS, ids, t, images=images, k=5, keep=2, final=4, progress=False)
    for p, r in zip(PERSONAS, rs):
        best = int(np.argmax(U[p]))
        assert r.winner == ids[best] and r.n_calls == n_calls_playoff(40, 5, 2, 4)
        assert set(r.winners) == ({ids[best], ids[best + 40]} if best < 10 else {ids[best]})
        assert r.shared == {ids[i]: (ids[i], ids[i + 40]) for i in range(10)}
        shown = [images[i].hash for g in r.matches['items'] for i in g]
        assert all(len({images[i].hash for i in g}) == len(g) for g in r.matches['items'])
        assert len(set(shown)) == 40
        assert len(r.elimination()) == 50
    # the package's k-way tournament merges the same ids the same way
    assert [r.shared for r in run_tournaments(PERSONAS, ids, t, k=5, images=images, progress=False)] == [r.shared for r in rs]
    with pytest.raises(TournamentError, match='shows the same image twice'):   # kept apart, a group shows one image twice
        playoff_tournament(ids, PERSONAS[0], t, k=50, keep=2, final=4, images=images, same=False)


def test_bad_settings_are_refused_with_the_fix(tmp_path):
    refs, U, utility = world(20)
    t = SimulatedTeacher(utility, tmp_path/'store', name='tourneys-test')
    with pytest.raises(ValueError, match=r'keep must be an int from 1 to k - 1 = 4'):
        playoff_tournament(range(20), PERSONAS[0], t, k=5, keep=5, images=refs)
    with pytest.raises(ValueError, match=r'final must be an int >= keep = 4'):
        playoff_tournament(range(20), PERSONAS[0], t, final=2, images=refs)
    with pytest.raises(TournamentError, match='duplicate item ids'):
        playoff_tournament([1, 2, 2], PERSONAS[0], t, images=refs)
    with pytest.raises(TypeError, match=r'has no \.pair'):
        playoff_tournament(range(20), PERSONAS[0], type('RankOnly', (), {'rank': lambda self, p, im: list(range(len(im)))})())
