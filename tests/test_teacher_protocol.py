"""The labelling runner (`Teacher.label`) without a server: input order, duplicates, store first, bounded in-flight
work (the window of futures that keeps each completion O(1) in the batch size), the progress bar, errors and Ctrl-C;
failures that stay with their own request (an unreadable image, a refused answer, an error from the client), a store
that cannot write, which stops the run; and the mini world's own SimulatedTeacher (`World.teacher`)."""
import json, subprocess, sys, textwrap, threading
from concurrent import futures as cf
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import paper_distill.teacher as teacher_mod
from paper_distill.prompts import ImageRef, rank_request, caption_request, shown_order
from paper_distill.store import TeacherStore
from paper_distill.teacher import Reply, ReplayTeacher, SimulatedTeacher, Teacher


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


@pytest.mark.parametrize('concurrency', [1, 3])
def test_an_error_in_a_worker_fails_its_request_only(tmp_path, concurrency, caplog):
    "An exception from the model's client (here on call 7) fails that request, named; the run goes on and reports it."
    reqs = requests(30)
    t = Gate(tmp_path/'s', concurrency=concurrency, fail_at=7, exc=RuntimeError)
    with caplog.at_level('WARNING', logger='paper_distill.teacher'): res = t.label(reqs)
    bad = [r for r in res if not r.ok]
    assert len(bad) == 1 and t.n == 30 and len(t.store) == 29 and t.stats['failures'] == 1
    assert 'RuntimeError: stop here' in bad[0].error and bad[0].request.describe() in bad[0].error
    assert '1 of 30 requests failed' in caplog.text
    again = Gate(TeacherStore(tmp_path/'s'), concurrency=concurrency)
    assert all(r.ok for r in again.label(reqs)) and again.n == 1            # a rerun asks only the one that failed
    with pytest.raises(RuntimeError, match='stop here'): Gate(tmp_path/'s2', fail_at=1, exc=RuntimeError).rank('p', requests(1)[0].images)


def photos(folder, n, px=24):
    "n small PNG files of distinct random pixels."
    folder.mkdir(parents=True, exist_ok=True)
    rng, out = np.random.default_rng(0), []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (px, px, 3), dtype=np.uint8)).save(folder/f'{i}.png'); out.append(str(folder/f'{i}.png'))
    return out


@pytest.mark.parametrize('concurrency', [1, 4])
def test_an_unreadable_image_fails_its_request_only_and_a_rerun_asks_only_it(tmp_path, concurrency):
    files = photos(tmp_path/'img', 8)
    cut = tmp_path/'img'/'cut.png'
    cut.write_bytes(Path(files[7]).read_bytes()[:200])                       # truncated: PIL raises a bare OSError
    reqs = [rank_request(f'p {i}', files[i % 4:i % 4 + 3]) for i in range(12)]
    reqs[5] = rank_request('p 5', [files[0], str(cut), files[1]])
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash', concurrency=concurrency)
    res = t.label(reqs)
    assert [i for i, r in enumerate(res) if not r.ok] == [5]
    assert f"image {cut} cannot be read" in res[5].error and "persona='p 5'" in res[5].error
    assert t.stats['failures'] == 1 and len(t.store) == 11
    cut.write_bytes(Path(files[7]).read_bytes())                               # mended
    t.reset_stats()
    assert all(r.ok for r in t.label(reqs)) and (t.stats['calls'], t.stats['hits']) == (1, 11)


def test_an_answer_the_store_refuses_fails_its_request_only(tmp_path):
    class Picky(Gate):
        def _validate(self, record): return 'refuse' not in record['request']['persona']
    reqs = requests(20) + requests(3, tag='refuse')
    t = Picky(tmp_path/'s', concurrency=4)
    res = t.label(reqs)
    assert [r.ok for r in res] == [True] * 20 + [False] * 3
    assert all('the store refused the answer' in r.error and r.request.describe() in r.error for r in res[20:])
    assert len(t.store) == 20 and t.stats['failures'] == 3


def test_images_are_hashed_once_each_in_worker_threads_after_the_bar_starts(tmp_path, monkeypatch):
    "Each file is read and hashed once however many requests show it, off the calling thread, once the bar exists."
    import paper_distill.prompts as prompts_mod
    from tqdm.std import tqdm as std_tqdm
    files, calls = photos(tmp_path/'img', 10), []
    real = prompts_mod.hash_image
    def spy(img):
        calls.append((str(img), threading.get_ident(), len(std_tqdm._instances))); return real(img)
    monkeypatch.setattr(prompts_mod, 'hash_image', spy)
    rng = np.random.default_rng(3)
    reqs = [rank_request(f'q {i}', [files[j] for j in rng.choice(10, 4, replace=False)]) for i in range(40)]
    t = Gate(tmp_path/'s', concurrency=4)
    res = t.label(reqs, progress=True)
    assert all(r.ok for r in res) and t.n == 40
    assert sorted(c[0] for c in calls) == sorted(files)                     # each file once (40 requests show 160 images)
    assert threading.get_ident() not in {c[1] for c in calls}               # in the workers
    assert min(c[2] for c in calls) >= 1                                     # the progress bar was there before the first


def test_the_answer_returned_is_the_record_the_store_kept(tmp_path):
    "Another process stores the same request first: `answer` returns the stored answer, not its own."
    class Late(Gate):
        def _ask(self, shown, attempt, key):
            other = TeacherStore(tmp_path/'s')                                  # another writer, answering the other way round
            sreq = self.store_request(req)[0]
            other.put(sreq, raw_text='theirs', parsed=list(range(len(shown.hashes), 0, -1)), model='gate-v1')
            other.close()
            return super()._ask(shown, attempt, key)
    req = requests(1, k=5)[0]
    t = Late(tmp_path/'s')
    res = t.answer(req)
    rec = t.store.get(res.key)
    assert rec['raw_text'] == 'theirs' and res.ok
    order = shown_order(req, 0)
    assert res.value == [order[n - 1] for n in rec['parsed']] == t.answer(req).value


def test_a_store_that_cannot_write_stops_the_run_at_the_first_answer(tmp_path):
    "A full disk (a file size limit here) stops the run with an error naming the store, and no more calls are made."
    script = textwrap.dedent(f'''
        import resource, signal, sys, json
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from tests.test_teacher_protocol import Gate, requests
        from paper_distill.store import TeacherStore
        from paper_distill.teacher import StoreWriteError
        path = {str(tmp_path/'s')!r}
        t = Gate(path, concurrency=4, delay_s=0.002)
        t.label(requests(5, tag='warm'))                         # the store exists, with a few records
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)            # a write past the limit fails with EFBIG instead of killing us
        import os
        big = max(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
        resource.setrlimit(resource.RLIMIT_FSIZE, (big + 30_000, resource.RLIM_INFINITY))
        n0 = t.n
        try: t.label(requests(400, tag='run')); print(json.dumps(dict(raised=None)))
        except StoreWriteError as e: print(json.dumps(dict(raised=str(e), calls=t.n - n0)))
    ''')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got['raised'] and f"in the teacher store {tmp_path/'s'}" in got['raised'], got
    n = len(TeacherStore(tmp_path/'s', readonly=True)) - 5
    assert got['calls'] <= n + 4 + 1 and got['calls'] < 400, (got, n)      # stored + those in flight at the failure (+ the failed one)


def test_replay_opens_read_only_and_refuses_a_path_without_a_store(tmp_path):
    t = SimulatedTeacher(hash_utility, tmp_path/'s', name='hash')
    want = [r.value for r in t.label(requests(3))]
    rep = ReplayTeacher(tmp_path/'s', **t.spec())
    assert rep.store.readonly and [r.value for r in rep.label(requests(3))] == want
    for missing in (tmp_path/'typo', tmp_path/'empty'):
        if missing.name == 'empty': missing.mkdir()
        with pytest.raises(FileNotFoundError, match=f"no teacher store to replay at {missing}"): ReplayTeacher(missing, **t.spec())
    assert not (tmp_path/'typo').exists() and list((tmp_path/'empty').iterdir()) == []


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
