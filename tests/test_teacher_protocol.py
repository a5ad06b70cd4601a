"""The labelling runner (`Teacher.label`) without a server: input order, duplicates, store first, bounded in-flight
work (the window of futures that keeps each completion O(1) in the batch size), the progress bar, errors and Ctrl-C;
and the mini world's own SimulatedTeacher (`World.teacher`)."""
import threading
from concurrent import futures as cf

import numpy as np
import pytest

import paper_distill.teacher as teacher_mod
from paper_distill.prompts import ImageRef, rank_request, caption_request
from paper_distill.store import TeacherStore
from paper_distill.teacher import Reply, SimulatedTeacher, Teacher


def hash_utility(persona, hashes):
    "A utility of hashes only (no pixels): a fixed score per (persona, image)."
    return np.array([(int(h[-6:], 16) * (len(persona) + 7)) % 1000 / 1000 for h in hashes])


def requests(n, k=4, tag='p'):
    return [rank_request(f'{tag} {i}', [ImageRef(f'{i:08x}{j:056x}') for j in range(k)]) for i in range(n)]


class Gate(Teacher):
    "Answers with the shown order; counts calls and answers in flight; raises `exc` on call number `fail_at`."
    def __init__(self, store, concurrency=1, fail_at=None, exc=KeyboardInterrupt, delay_s=0.0):
        super().__init__(store, 'gate', 'gate-v1', concurrency=concurrency)
        self.fail_at, self.exc, self.delay_s = fail_at, exc, delay_s
        self.n, self.now, self.peak, self.lock = 0, 0, 0, threading.Lock()

    def _ask(self, shown, attempt, key):
        with self.lock:
            self.n += 1; n = self.n; self.now += 1; self.peak = max(self.peak, self.now)
        try:
            if n == self.fail_at: raise self.exc('stop here')
            if self.delay_s: threading.Event().wait(self.delay_s)
            return Reply(','.join(str(i + 1) for i in range(len(shown.hashes))))
        finally:
            with self.lock: self.now -= 1


@pytest.mark.parametrize('concurrency', [1, 3, 8])
def test_results_in_input_order_duplicates_once_same_as_one_by_one(tmp_path, concurrency):
    reqs = requests(60)
    reqs = reqs + [reqs[5], reqs[17], rank_request(reqs[9].persona, reqs[9].images[::-1])]   # repeats, one reordered
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash', concurrency=concurrency)
    res = t.label(reqs)
    assert [r.request for r in res] == reqs and all(r.ok for r in res)
    assert t.stats['calls'] == 60 and len(t.store) == 60
    one = SimulatedTeacher(hash_utility, tmp_path/'s1', name='hash')
    assert [r.value for r in res] == [one.answer(r).value for r in reqs]
    assert res[-1].value == [3 - v for v in res[9].value]


def test_store_first_then_only_the_misses(tmp_path):
    reqs = requests(40)
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash', concurrency=4)
    first = t.label(reqs[::2])
    t.reset_stats()
    res = t.label(reqs)
    s = t.stats
    assert (s['hits'], s['misses'], s['calls']) == (20, 20, 20)
    assert [r.cached for r in res] == [i % 2 == 0 for i in range(40)]
    assert [r.value for r in res[::2]] == [r.value for r in first]


@pytest.mark.parametrize('concurrency', [2, 5])
def test_in_flight_work_is_bounded_by_a_window(tmp_path, monkeypatch, concurrency):
    "At most `concurrency` answers run at once and each wait() sees at most 2 × concurrency futures, whatever the batch."
    sizes = []
    def spy_wait(fs, return_when):
        sizes.append(len(fs)); return cf.wait(fs, return_when=return_when)
    monkeypatch.setattr(teacher_mod, 'wait', spy_wait)
    t = Gate(tmp_path/'s', concurrency=concurrency, delay_s=0.001)
    res = t.label(requests(300))
    assert all(r.ok for r in res) and t.n == 300
    assert t.peak <= concurrency
    assert sizes and max(sizes) <= 2 * concurrency
    assert len(sizes) >= 300 // (2 * concurrency)


def test_concurrency_one_runs_in_the_calling_thread(tmp_path):
    seen = set()
    class Where(Gate):
        def _ask(self, shown, attempt, key):
            seen.add(threading.get_ident()); return super()._ask(shown, attempt, key)
    assert all(r.ok for r in Where(tmp_path/'s').label(requests(5)))
    assert seen == {threading.get_ident()}


@pytest.mark.parametrize('concurrency', [1, 4])
def test_keyboard_interrupt_cancels_the_rest_and_a_rerun_resumes(tmp_path, concurrency):
    reqs = requests(200)
    t = Gate(tmp_path/'s', concurrency=concurrency, fail_at=10)
    with pytest.raises(KeyboardInterrupt): t.label(reqs)
    asked = t.n
    assert 10 <= asked <= 10 + 2 * concurrency                      # the queued requests were never started
    stored = len(t.store)
    assert stored == asked - 1                                       # every answer that came back was stored
    again = Gate(TeacherStore(tmp_path/'s'), concurrency=concurrency)
    res = again.label(reqs)
    assert all(r.ok for r in res) and again.n == 200 - stored and len(again.store) == 200


def test_an_error_in_a_worker_propagates(tmp_path):
    t = Gate(tmp_path/'s', concurrency=3, fail_at=7, exc=RuntimeError)
    with pytest.raises(RuntimeError, match='stop here'): t.label(requests(100))
    assert t.n <= 7 + 6


def test_failed_request_gives_its_error_to_its_duplicates(tmp_path):
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash', concurrency=2)   # no caption_fn: captions fail
    img = ImageRef('ab' * 32)
    res = t.label([caption_request(img), *requests(3), caption_request(img)])
    assert [r.ok for r in res] == [False, True, True, True, False]
    assert res[0].error == res[-1].error and 'caption_fn' in res[0].error
    assert t.stats['failures'] == 1


def test_progress_bar_shows_counts(tmp_path, capsys):
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash', concurrency=2)
    t.label(requests(12), progress=True, desc='labelling')
    t.label(requests(12), progress=True)
    err = capsys.readouterr().err
    assert 'labelling' in err and 'simulated:hash simulated-v1' in err
    assert 'miss=12' in err and 'hit=12' in err and '12/12' in err


def test_bad_request_type_names_the_item(tmp_path):
    t = Gate(tmp_path/'s')
    with pytest.raises(TypeError, match=r'requests\[1\] is a tuple, not a Request'): t.label([requests(1)[0], ('p', [])])


def test_world_teacher_is_tied_to_the_world_config(tmp_path):
    from paper_distill.world import WorldConfig, make_world
    w = make_world(WorldConfig.smoke(n_items=120, n_catalog_val=20, n_catalog_test=20, n_pretrain=40, n_persona_train=10,
                                     n_persona_val=5, n_persona_test=5, n_persona_heldout=5, teacher_temperature=0.25))
    t = w.teacher(tmp_path/'s')
    assert isinstance(t, SimulatedTeacher) and t.utility == w.utility
    assert t.gen_config['temperature'] == w.config.teacher_temperature == 0.25
    assert t.teacher_id == f"simulated:world-{w.config.hash()[:16]}"
    other = w.config.replace(seed=1)
    assert other.hash() != w.config.hash()
    cat = w.catalogs['hm']
    persona = w.personas['nemotron'].texts[0]
    group = [ImageRef(h) for h in cat.hashes()[:5]]
    assert sorted(t.rank(persona, group)) == list(range(5))
    u = w.utility(persona, [g.hash for g in group])
    assert w.teacher(t.store, temperature=0).rank(persona, group) == list(np.argsort(-u, kind='stable'))
    assert t.caption(group[2]) == cat.meta.caption.iloc[2]
    assert t.caption(ImageRef(w.pretrain.hashes()[1])) == w.pretrain.meta.caption.iloc[1]
    over = w.teacher(t.store, seed=7, position_bias=0.1, name='mine')
    assert (over.gen_config['seed'], over.gen_config['position_bias'], over.teacher_id) == (7, 0.1, 'simulated:mine')
    with pytest.raises(KeyError, match='not an image of this world'): t.caption(ImageRef('0' * 64))
