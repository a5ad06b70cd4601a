"""The position-bias audit of a teacher store: a simulated teacher configured with a position bias shows it, an
unbiased one does not (every interval covers 1/k); the column-by-column read of a Parquet snapshot gives the same
answers as the record-by-record read; and bad input is named."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from paper_distill.audit import position_bias, shown_winners, _from_records
from paper_distill.prompts import ImageRef, rank_request, pair_request
from paper_distill.records import RecordError
from paper_distill.snapshots import SnapshotStore
from paper_distill.store import TeacherStore
from paper_distill.teacher import SimulatedTeacher

N_PERSONAS, N_ITEMS = 50, 200
HASHES = [f'{i:064x}' for i in range(N_ITEMS)]          # content hashes: the simulated teacher needs no pixels
UTIL = np.random.default_rng(7).normal(size=(N_PERSONAS, N_ITEMS))
_COL = {h: j for j, h in enumerate(HASHES)}


def utility(persona: str, hashes: list) -> np.ndarray:
    "A fixed utility of each image for each persona ('persona <i>')."
    return UTIL[int(persona.split()[-1]), [_COL[h] for h in hashes]]


def requests(seed: int = 0) -> list:
    "1,200 rankings of 5 images, 600 of 3, and 800 pairs, drawn at random."
    rng = np.random.default_rng(seed)
    pick = lambda k: [ImageRef(HASHES[j]) for j in rng.choice(N_ITEMS, k, replace=False)]
    return ([rank_request(f'persona {i % N_PERSONAS}', pick(5)) for i in range(1200)] +
            [rank_request(f'persona {i % N_PERSONAS}', pick(3)) for i in range(600)] +
            [pair_request(f'persona {i % N_PERSONAS}', pick(2)) for i in range(800)])


@pytest.fixture(scope='module')
def store(tmp_path_factory):
    "One store folder holding the answers of an unbiased teacher ('fair') and of one with position_bias=0.5 ('biased')."
    path = tmp_path_factory.mktemp('audit')/'store'
    reqs = requests()
    for name, bias in (('fair', 0.0), ('biased', 0.5)):
        t = SimulatedTeacher(utility, path, name=name, temperature=0.5, position_bias=bias)
        assert all(r.ok for r in t.label(reqs))
        t.store.close()
    return path


def groups(tab: pd.DataFrame) -> dict:
    return {k: t for k, t in tab.groupby('k')}


@pytest.mark.parametrize('task, ks', [('rank', (3, 5)), ('pair', (2,))])
def test_configured_bias_shows_and_none_does_not(store, task, ks):
    fair = position_bias(store, task, teacher_id='simulated:fair')
    biased = position_bias(store, task, teacher_id='simulated:biased')
    assert sorted(groups(fair)) == sorted(groups(biased)) == list(ks)
    for k, t in groups(fair).items():
        assert t.covers.all(), t                                  # every slot's interval holds 1/k
        assert np.isclose(t.share.sum(), 1.0) and (t.uniform == 1 / k).all()
    for k, t in groups(biased).items():
        first = t[t.slot == 1].iloc[0]
        assert first.lo > 1 / k, t                                # the first slot is ranked first more than 1/k of the time
    asked = {(r.task, r.persona, frozenset(r.hashes)) for r in requests()}      # a request drawn twice is one record
    n = {k: sum(1 for a in asked if a[0] == task and len(a[2]) == k) for k in ks}
    assert {k: int(t['first'].sum()) for k, t in groups(biased).items()} == n


def test_all_teachers_together_and_one_at_a_time(store):
    both = position_bias(store)
    fair = position_bias(store, teacher_id='simulated:fair')
    biased = position_bias(store, teacher_id='simulated:biased')
    assert (both['first'].to_numpy() == fair['first'].to_numpy() + biased['first'].to_numpy()).all()
    assert position_bias(store, teacher_id='someone else').empty


def test_snapshot_columns_read_like_records(store, tmp_path):
    n = TeacherStore(store, readonly=True).export_parquet(tmp_path/'snap.parquet')
    folder = shown_winners(store)
    assert len(folder) == n == 2 * len({(r.task, r.persona, frozenset(r.hashes)) for r in requests()})
    snap = shown_winners(tmp_path/'snap.parquet')                # column by column
    pd.testing.assert_frame_equal(snap, folder)
    pd.testing.assert_frame_equal(shown_winners(SnapshotStore(tmp_path/'snap.parquet')), folder)
    pd.testing.assert_frame_equal(_from_records(SnapshotStore(tmp_path/'snap.parquet')), folder)   # each record rebuilt and checked
    pd.testing.assert_frame_equal(position_bias(tmp_path/'snap.parquet', 'pair'), position_bias(store, 'pair'))


def test_a_bad_answer_in_a_snapshot_is_named(store, tmp_path):
    TeacherStore(store, readonly=True).export_parquet(tmp_path/'snap.parquet')
    t = pq.read_table(tmp_path/'snap.parquet')
    parsed = t.column('parsed').to_pylist()
    row = next(i for i, (q, p) in enumerate(zip(t.column('request').to_pylist(), parsed)) if q['task'] == 'rank' and len(q['image_hashes']) == 5)
    parsed[row] = '[1,1,2,3,4]'                                   # not a permutation: a write would refuse it, a hand edit does not
    bad = t.set_column(t.schema.get_field_index('parsed'), 'parsed', pa.array(parsed, pa.string()))
    pq.write_table(bad, tmp_path/'bad.parquet')
    with pytest.raises(RecordError, match=rf'row {row}: answer \[1,1,2,3,4\] is not a valid rank answer'):
        shown_winners(tmp_path/'bad.parquet')


def test_bad_input_is_named(store, tmp_path):
    with pytest.raises(ValueError, match="audit 'rank'"): position_bias(store, 'caption')
    with pytest.raises(FileNotFoundError, match='no teacher store at'): position_bias(tmp_path/'nowhere')
    (tmp_path/'snap.jsonl').write_text('{}\n')
    with pytest.raises(ValueError, match='import a JSONL snapshot into a folder first'): position_bias(tmp_path/'snap.jsonl')
    pq.write_table(pa.table({'x': [1, 2]}), tmp_path/'other.parquet')
    with pytest.raises(RecordError, match='not a teacher store snapshot'): position_bias(tmp_path/'other.parquet')
