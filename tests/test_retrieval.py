"Tests of paper_distill.retrieval: exact top-k against brute force (ties included), the float16 path, the on-disk index, FAISS, bad input."
import json, os, signal, sys, time

import numpy as np
import pytest

from paper_distill.retrieval import (KERNELS, Index, catalog_hash, exact_topk, faiss_index, faiss_topk, half_topk, model_id,
                                     to_half)


def unit(x): return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

def brute(q, emb, k):
    "Scores and indices of a stable full sort: ties by lower index."
    s = np.atleast_2d(q).astype(np.float32) @ emb.astype(np.float32).T
    i = np.argsort(-s, axis=1, kind='stable')[:, :k]
    return np.take_along_axis(s, i, 1), i

def recall(i, ref): return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(i, ref)]))


@pytest.fixture(scope='module')
def tied():
    "Quantised rows (dot products exact in float32 and float16) with many ties, and duplicated rows far apart."
    rng = np.random.default_rng(1)
    emb = (rng.integers(-3, 4, (2500, 24)) / 8).astype(np.float32)
    emb[2000:2200] = emb[:200]
    emb[2400:2500] = emb[1000]
    return emb, (rng.integers(-3, 4, (17, 24)) / 8).astype(np.float32)


@pytest.mark.parametrize('kernel', KERNELS)
@pytest.mark.parametrize('chunk', [1, 7, 100, 999, 2500, None])
def test_exact_equals_stable_argsort_with_ties(tied, kernel, chunk):
    emb, qs = tied
    for threads in (1, 2, 3):
        for q in (qs, qs[:1], qs[3]):                        # many queries, a batch of one, one 1-D query
            s, i = exact_topk(q, emb, 25, chunk=chunk, kernel=kernel, threads=threads)
            bs, bi = brute(q, emb, 25)
            if q.ndim == 1: bs, bi = bs[0], bi[0]
            assert i.dtype == np.int64 and s.dtype == np.float32 and i.shape == bi.shape
            np.testing.assert_array_equal(i, bi); np.testing.assert_array_equal(s, bs)


def test_exact_ties_are_really_there(tied):
    "The brute-force reference above has tied blocks inside the top 25, some cut by the k-th place."
    emb, qs = tied
    s, _ = brute(qs, emb, 25)
    assert (np.diff(s, axis=1) == 0).sum() > 100
    full = np.sort(qs @ emb.T, axis=1)[:, ::-1]
    assert (full[:, 24] == full[:, 25]).sum() >= 5


def test_exact_on_float16_rows_equals_brute_force(tied):
    "float16 rows are scored as stored (exact here: the values and sums are representable), one query and many."
    emb, qs = tied
    e16 = emb.astype(np.float16)
    for q in (qs, qs[:1]):
        for kernel in KERNELS:
            s, i = exact_topk(q, e16, 25, chunk=300, kernel=kernel, threads=2)
            bs, bi = brute(q, e16, 25)
            np.testing.assert_array_equal(i, bi); np.testing.assert_array_equal(s, bs)


def test_exact_on_gaussian_data_and_k_beyond_n():
    rng = np.random.default_rng(2)
    emb, qs = unit(rng.standard_normal((6000, 96))), unit(rng.standard_normal((40, 96)))
    ref = np.argsort(-(qs.astype(np.float64) @ emb.T.astype(np.float64)), axis=1)[:, :10]
    for kernel in KERNELS:
        s, i = exact_topk(qs, emb, 10, kernel=kernel)
        np.testing.assert_array_equal(i, ref)
        np.testing.assert_allclose(s, np.take_along_axis(qs @ emb.T, ref, 1), atol=1e-6)
    s, i = exact_topk(qs[:2], emb[:7], 10)                   # k > N: all N, in order
    assert i.shape == (2, 7) and sorted(i[0]) == list(range(7))


def test_parallel_search_works_in_a_forked_child():
    "The worker threads belong to the process that made them: a child forked after a search gets its own."
    rng = np.random.default_rng(9)
    emb, qs = unit(rng.standard_normal((40_000, 64))), unit(rng.standard_normal((8, 64)))
    _, ref = exact_topk(qs, emb, 10, threads=2)
    pid = os.fork()
    if pid == 0:
        try: os._exit(0 if (exact_topk(qs, emb, 10, threads=2)[1] == ref).all() else 1)
        except BaseException: os._exit(2)
    deadline = time.time() + 120
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.time() < deadline: time.sleep(0.05)
    if done[0] == 0: os.kill(pid, signal.SIGKILL); os.waitpid(pid, 0)
    assert done[0] == pid and os.waitstatus_to_exitcode(done[1]) == 0


def test_half_path_recall_is_one_on_random_data():
    "The float16 scan + float32 re-rank returns the float32 top-k exactly (recall@10 = 1.0), scores to rounding."
    rng = np.random.default_rng(3)
    emb, qs = unit(rng.standard_normal((50_000, 128))), unit(rng.standard_normal((64, 128)))
    e16 = to_half(emb)
    s, i = exact_topk(qs, emb, 10)
    for q, ref_s, ref_i in ((qs, s, i), (qs[:1], s[:1], i[:1])):
        hs, hi = half_topk(q, e16, emb, 10)
        assert recall(hi, ref_i) == 1.0
        np.testing.assert_array_equal(hi, ref_i); np.testing.assert_allclose(hs, ref_s, atol=2e-6)


def near_duplicates(base, n, step):
    "n rows whose scores against base[0] are 1 - j*step (j = n..1: the closest last), in random directions."
    rng = np.random.default_rng(8)
    u = rng.standard_normal((n, base.shape[1])); u -= (u @ base[0].astype(np.float64))[:, None] * base[0]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    c = 1 - step * np.arange(n, 0, -1)
    return (c[:, None] * base[0] + np.sqrt(1 - c**2)[:, None] * u).astype(np.float32)


def test_half_path_falls_back_when_float16_cannot_tell():
    "Scores 1e-5 apart: float32 orders them, float16 cannot; the check sends the query to the float32 scan."
    rng = np.random.default_rng(4)
    base = unit(rng.standard_normal((5000, 64)))
    emb = np.concatenate([base, near_duplicates(base, 400, 1e-5)])
    e16, q = to_half(emb), emb[:3] + 0.0
    _, ref = exact_topk(q, emb, 10)
    np.testing.assert_array_equal(ref[0], [0] + list(range(5399, 5390, -1)))   # itself, then the 9 closest copies
    assert recall(exact_topk(q[:1], e16, 10)[1], ref[:1]) < 1.0
    for shortlist in (None, 64, 5400):
        np.testing.assert_array_equal(half_topk(q, e16, emb, 10, shortlist=shortlist)[1], ref)
        np.testing.assert_array_equal(half_topk(q[0], e16, emb, 10, shortlist=shortlist)[1], ref[0])


# ---------------------------------------------------------------- the index
@pytest.fixture(scope='module')
def world_and_student():
    from paper_distill.world import WorldConfig, make_world
    from paper_distill.student import Student
    return make_world(WorldConfig.smoke()), Student()


@pytest.fixture(scope='module')
def other_student():
    from paper_distill.student import Student
    from paper_distill.clip import new_clip, mini_model_cfg, MINI_PREPROCESS
    return Student(None, *new_clip(mini_model_cfg(), MINI_PREPROCESS, seed=7))


def test_index_round_trip_and_search(world_and_student, tmp_path):
    from paper_distill.tasks import world_task
    world, st = world_and_student
    task = world_task(world, 'nemotron', 'hm')
    ix = Index.build(st, task, progress=False)
    cat = world.catalogs['hm']
    assert ix.ids == cat.ids and ix.catalog == catalog_hash(cat.ids, cat.hashes()) and ix.model == model_id(st)
    personas = task.texts('test', 4)
    res = ix.search(personas, k=7, method='half')                # makes the float16 copy, saved below
    ix.save(tmp_path/'ix')
    assert {p.name for p in (tmp_path/'ix').iterdir()} == {'index.json', 'embeddings.npy', 'embeddings-f16.npy'}
    meta = json.loads((tmp_path/'ix'/'index.json').read_text())
    assert (meta['n'], meta['d'], meta['dtype'], meta['model'], meta['catalog']) == (240, st.embed_dim, 'float32', ix.model, ix.catalog)
    for catalog in (cat, task, ix.catalog, (cat.ids, cat.hashes())):
        back = Index.load(tmp_path/'ix', model=st, catalog=catalog)
        assert back.ids == ix.ids and back.model == ix.model and back.catalog == ix.catalog
    assert isinstance(back.emb, np.memmap) and isinstance(back.emb16, np.memmap)
    np.testing.assert_array_equal(back.emb, ix.emb); np.testing.assert_array_equal(back.emb16, ix.emb16)
    again = back.search(personas, k=7)
    assert list(again.columns) == ['query', 'rank', 'id', 'score'] and len(again) == 28
    assert again[['query', 'rank', 'id']].equals(res[['query', 'rank', 'id']])
    scores = st.score(personas, __import__('torch').from_numpy(np.array(ix.emb))).numpy()
    for p, row in zip(personas, scores):                       # the index's order = the student's own scores sorted
        assert again[again['query'] == p]['id'].tolist() == [ix.ids[j] for j in np.argsort(-row, kind='stable')[:7]]
    vec = back.search(st.embed_texts(personas[:1]).numpy()[0], k=3)
    assert vec['query'].tolist() == [0, 0, 0] and vec['id'].tolist() == again['id'][:3].tolist()


def test_index_load_refuses_another_model_or_catalog(world_and_student, other_student, tmp_path):
    world, st = world_and_student
    ix = Index.build(st, world.catalogs['hm'], progress=False).save(tmp_path/'ix')
    built = json.loads((ix/'index.json').read_text())
    with pytest.raises(ValueError) as e: Index.load(ix, model=other_student)
    msg = str(e.value)
    assert model_id(other_student) in msg and built['model'] in msg and 'Index.build' in msg
    assert model_id(other_student).split('@')[0] == built['model'].split('@')[0]   # same model name, other weights
    other_cat = world.catalogs['farfetch']
    with pytest.raises(ValueError) as e: Index.load(ix, model=st, catalog=other_cat)
    assert catalog_hash(other_cat.ids, other_cat.hashes()) in str(e.value) and built['catalog'] in str(e.value)
    with pytest.raises(ValueError, match='text queries need a student'): Index.load(ix).search(['a persona'])
    with pytest.raises(ValueError, match='text tower'):
        Index.load(ix).search(['someone who hikes'], student=_student_with_other_text_tower())
    with pytest.raises(FileNotFoundError, match='Index.build'): Index.load(tmp_path/'nothing')


def _student_with_other_text_tower():
    from paper_distill.student import Student
    from paper_distill.clip import new_clip, mini_model_cfg, MINI_PREPROCESS
    import torch
    s = Student(None, *new_clip(mini_model_cfg(), MINI_PREPROCESS, seed=1))
    with torch.no_grad(): s.text_parameters()[0].add_(1.0)
    return s


def test_incremental_add_equals_one_shot_build(world_and_student):
    world, st = world_and_student
    cat = world.catalogs['zap50k']
    whole = Index.build(st, cat, progress=False)
    part = Index.build(st, cat.subset(cat.ids[:50]), progress=False, batch_size=16)
    part.add(cat.ids[50:130], cat.sources[50:130])             # images, hashed here
    part.add(cat.ids[130:], [cat.image(j) for j in range(130, len(cat))], cat.hashes()[130:])
    assert part.ids == whole.ids and part.catalog == whole.catalog == catalog_hash(cat.ids, cat.hashes())
    np.testing.assert_allclose(part.emb, whole.emb, atol=1e-5)
    emb = Index(whole.emb[:10].copy(), cat.ids[:10], whole.model)   # embeddings: hashed by their bytes
    emb.add(cat.ids[10:20], whole.emb[10:20] * 3)                  # normalised on the way in
    np.testing.assert_allclose(emb.emb, whole.emb[:20], atol=1e-6)
    with pytest.raises(ValueError, match=rf"already in the index or repeated: \['{cat.ids[3]}'\]"): part.add([cat.ids[3]], cat.sources[3:4])
    with pytest.raises(ValueError, match=r"repeated: \['new'\]"): part.add(['new', 'new'], whole.emb[:2])
    with pytest.raises(ValueError, match='dimension 5, but the index'): part.add(['x'], np.ones((1, 5), np.float32))
    assert len(part) == len(cat)                                   # refused adds change nothing


# ---------------------------------------------------------------- FAISS
def test_faiss_flat_equals_exact_and_approximate_recall():
    pytest.importorskip('faiss')
    rng = np.random.default_rng(5)
    emb, qs = unit(rng.standard_normal((8000, 48))), unit(rng.standard_normal((50, 48)))
    s, i = exact_topk(qs, emb, 10)
    fs, fi = faiss_topk(faiss_index(emb, 'flat'), qs, 10)
    np.testing.assert_array_equal(fi, i); np.testing.assert_allclose(fs, s, atol=1e-5)
    ivf = faiss_index(emb, 'ivf')
    assert ivf.nlist == round(np.sqrt(8000))
    assert recall(faiss_topk(ivf, qs, 10, nprobe=ivf.nlist)[1], i) == 1.0      # every cell visited: exhaustive
    assert recall(faiss_topk(ivf, qs, 10, nprobe=16)[1], i) > 0.6
    assert recall(faiss_topk(faiss_index(emb, 'hnsw'), qs, 10, ef_search=128)[1], i) > 0.8
    ix = Index(emb, [str(j) for j in range(len(emb))], 'random')
    np.testing.assert_array_equal(ix.topk(qs, 10, 'flat')[1], i)
    assert recall(ix.topk(qs, 10, 'ivf', nprobe=90)[1], i) == 1.0


def test_without_faiss_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'faiss', None)
    emb = unit(np.random.default_rng(6).standard_normal((100, 8)))
    for call in (lambda: faiss_index(emb, 'flat'), lambda: Index(emb, [str(j) for j in range(100)], 'm').topk(emb[:1], 3, 'hnsw')):
        with pytest.raises(ImportError, match=r'pip install "paper_distill\[faiss\]"'): call()


# ---------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_a_clear_message():
    emb = unit(np.random.default_rng(7).standard_normal((50, 16)))
    with pytest.raises(ValueError, match='no queries'): exact_topk(np.zeros((0, 16)), emb)
    with pytest.raises(ValueError, match='no queries'): exact_topk([], emb)
    with pytest.raises(ValueError, match="query dimension 12 does not match the embeddings' dimension 16"): exact_topk(np.ones(12), emb)
    with pytest.raises(ValueError, match="query dimension 12 does not match the embeddings' dimension 16"): half_topk(np.ones(12), to_half(emb), emb)
    for k in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='k must be an int >= 1'): exact_topk(emb[0], emb, k)
    with pytest.raises(ValueError, match='NaN or inf'): exact_topk(np.full(16, np.nan), emb)
    with pytest.raises(TypeError, match='float32'): exact_topk(emb[0], emb.astype(np.float64))
    with pytest.raises(ValueError, match='kernel must be one of'): exact_topk(emb[0], emb, kernel='blas')
    with pytest.raises(ValueError, match='chunk must be an int >= 1'): exact_topk(emb[0], emb, chunk=0)
    with pytest.raises(ValueError, match='catalog is empty'): exact_topk(emb[0], emb[:0])
    with pytest.raises(ValueError, match='method must be one of'): Index(emb, [str(j) for j in range(50)], 'm').topk(emb[0], 3, 'lsh')
