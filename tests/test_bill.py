"""The bill before the run against the run that follows: a labelling run and tournaments exactly (requests, store hits,
calls), tokens and dollars exactly against the Gemini client and a local server that counts tokens by the same rule,
a distillation's requests through `paper_distill distill --dry-run` (an upper bound that the run reaches, then exact on
a resume and a replay), and price tables that are checked and can be overridden."""
import json

import numpy as np
import pytest

from paper_distill.bill import TokenModel, calibrate, label_part, tournament_part, make_bill, bill_distill
from paper_distill.core import load_prices, PRICES_ENV_VAR
from paper_distill.cli import main
from paper_distill.distill import DistillConfig, distill
from paper_distill.prompts import rank_request, pair_request, caption_request
from paper_distill.store import TeacherStore
from paper_distill.tasks import world_task
from paper_distill.teacher import SimulatedTeacher, ReplayTeacher
from paper_distill.tournament import run_tournaments
from paper_distill.world import WorldConfig, make_world

COUNTERS = ('requests', 'hits', 'misses', 'calls')


def images(n, seed=0, px=24):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (px, px, 3), dtype=np.uint8) for _ in range(n)]


def utility(persona, hashes):
    "A persona-dependent preference: what the simulated teacher ranks by (plus its noise)."
    return np.array([int(h[:6], 16) % 97 + len(persona) for h in hashes], dtype=float)


def counters(stats): return {k: stats[k] for k in COUNTERS}


def test_labelling_bill_equals_the_run(tmp_path):
    "Repeats (in another order too), requests already stored, and new ones: the bill's counters are the run's."
    imgs = images(8)
    t = SimulatedTeacher(utility, TeacherStore(tmp_path/'s'), temperature=0.3)
    first = [rank_request('a trail runner', imgs[:5]), pair_request('a trail runner', imgs[5:7])]
    t.label(first); t.reset_stats()
    reqs = first + [rank_request('a trail runner', imgs[:5][::-1]),                       # a stored question, shuffled
                    rank_request('a collector of vinyl', imgs[2:7]), rank_request('a collector of vinyl', imgs[2:7]),
                    pair_request('a parent of twins', imgs[6:8]), caption_request(imgs[0])]
    t.caption_fn = lambda h: f'a photo {h[:6]}'
    part = label_part(t, reqs)
    assert (part.requests, part.hits, part.misses) == (7, 4, 3)
    t.label(reqs)
    assert counters(t.stats) == {k: getattr(part, k) for k in COUNTERS}
    assert label_part(t, reqs).hits == 7                                                   # now all stored


@pytest.mark.parametrize('k', [2, 4])
def test_tournament_bill_equals_the_run(tmp_path, k):
    "One persona's tournament already played, two new: the bill plays the seeded brackets from the store exactly."
    imgs, t = images(11, seed=k), SimulatedTeacher(utility, TeacherStore(tmp_path/'s'), temperature=0.5)
    personas = ['a trail runner', 'a collector of vinyl', 'a parent of twins']
    run_tournaments(personas[:1], list(range(11)), t, k=k, images=imgs, seed=7, progress=False); t.reset_stats()
    part = tournament_part(t, personas, list(range(11)), k=k, images=imgs, seed=7)
    assert part.exact and part.hits > 0 and part.misses > 0
    run_tournaments(personas, list(range(11)), t, k=k, images=imgs, seed=7, progress=False)
    assert counters(t.stats) == {c: getattr(part, c) for c in COUNTERS}


SENTINEL = 'sentinel-KEY-bill-0b5e'


@pytest.fixture
def gemini(tmp_path, monkeypatch):
    "A GeminiTeacher (the real google-genai client) on a local generateContent server, priced from the price table."
    from paper_distill.fake_gemini import FakeGemini
    from paper_distill.gemini import GeminiTeacher
    monkeypatch.setenv('GEMINI_API_KEY', SENTINEL)
    monkeypatch.delenv('GOOGLE_API_KEY', raising=False)
    p = load_prices()['gemini-2.5-flash']
    with FakeGemini(expected_key=SENTINEL, seed=0) as server:
        yield GeminiTeacher(tmp_path/'g', model='gemini-2.5-flash', base_url=server.url, backoff_s=0.005, max_backoff_s=0.02,
                            concurrency=4, price_per_mtok=(p.input, p.output))


def test_gemini_bill_tokens_and_dollars_equal_the_run(gemini):
    """The local server counts tokens as the bill's rule does (258 per image, a token per 4 characters of prompt and
    answer), so the bill's tokens and dollars equal what the client reports, exactly. A caption's length is the one
    thing the rule assumes: here the server's (24 characters)."""
    imgs = images(9, seed=3)
    reqs = [rank_request('a trail runner who buys muted colours', imgs[:5]), rank_request('a collector of vinyl', imgs[3:6]),
            pair_request('a parent of twins', imgs[6:8]), caption_request(imgs[8]), rank_request('a trail runner who buys muted colours', imgs[:5])]
    tokens = TokenModel(caption_chars=24)
    bill = make_bill(gemini, [label_part(gemini, reqs, tokens)], tokens)
    assert bill.price.model == 'gemini-2.5-flash' and bill.price.source.startswith('https://')
    res = gemini.label(reqs)
    assert all(r.ok for r in res)
    got, want = gemini.stats, bill.totals
    assert {k: got[k] for k in (*COUNTERS, 'input_tokens', 'output_tokens')} == {k: want[k] for k in (*COUNTERS, 'input_tokens', 'output_tokens')}
    assert got['cost_usd'] == pytest.approx(want['cost_usd'], rel=1e-12) and want['cost_usd'] > 0
    cal = calibrate(gemini)                                     # the store's usage fits the same rule back
    assert cal.tokens_per_image == pytest.approx(258) and 'calibrated on the usage of 4 record(s)' in cal.basis
    more = [rank_request('a tailor', imgs[1:6])]
    assert make_bill(gemini, [label_part(gemini, more, cal)], cal).totals['input_tokens'] == label_part(gemini, more).input_tokens


@pytest.fixture(scope='module')
def world(): return make_world(WorldConfig.smoke())


def bill_line(out:str)->dict: return next(json.loads(line) for line in out.splitlines() if line.startswith('{"bill"'))
def teacher_line(out:str)->dict: return next(json.loads(line) for line in out.splitlines() if line.startswith('{"teacher"'))


def test_distill_dry_run_then_the_run(tmp_path, capsys):
    "`distill --dry-run` writes nothing; its request count (an upper bound) is the run's; on the finished run it is exact."
    args = ['distill', '--profile', 'smoke', '--store', str(tmp_path/'store'), '--out', str(tmp_path/'run'), '--quiet']
    assert main(args + ['--dry-run']) == 0
    out = capsys.readouterr().out
    b = bill_line(out)
    assert 'bill before the run' in out and 'no price for model' in out and b['exact'] is False
    assert not (tmp_path/'store').exists() and not (tmp_path/'run').exists()              # nothing written, nothing trained
    assert main(args) == 0
    real = teacher_line(capsys.readouterr().out)['teacher']
    assert real['requests'] == b['bill']['requests'] == 180 and real['calls'] == b['bill']['calls']
    assert main(args + ['--dry-run']) == 0                                                # the run is finished: asking again is all hits
    again = bill_line(capsys.readouterr().out)
    assert again['exact'] is True and (again['bill']['hits'], again['bill']['calls']) == (180, 0)
    assert main(args) == 0
    real = teacher_line(capsys.readouterr().out)['teacher']
    assert {k: real[k] for k in COUNTERS} == {k: again['bill'][k] for k in COUNTERS}


def test_replayed_groups_are_billed_exactly(world, tmp_path):
    "A run that replays another run's recorded groups: the bill knows every request, and the store answers them all."
    task, cfg = world_task(world), DistillConfig.smoke(cycles=2)
    t = world.teacher(TeacherStore(tmp_path/'store'))
    distill(task, t, tmp_path/'a', cfg, progress=False)
    rt = ReplayTeacher.like(t)
    b = bill_distill(task, rt, cfg, tmp_path/'b', replay_from=tmp_path/'a')
    assert b.exact and (b.totals['requests'], b.totals['calls']) == (120, 0)
    distill(task, rt, tmp_path/'b', cfg, replay_from=tmp_path/'a', progress=False)
    assert counters(rt.stats) == {k: b.totals[k] for k in COUNTERS}


def test_price_tables_are_checked_and_overridable(tmp_path, monkeypatch):
    bad = tmp_path/'bad.json'
    bad.write_text(json.dumps({'models': {'my-vlm': {'input': '0.1', 'output': 0.4}}}))
    with pytest.raises(ValueError, match=r"model 'my-vlm' needs 'input'"): load_prices(bad)
    bad.write_text('{"my-vlm": [0.1, 0.4]}')
    with pytest.raises(ValueError, match="'models' object"): load_prices(bad)
    good = tmp_path/'mine.json'
    good.write_text(json.dumps({'models': {'simulated-v1': {'input': 1.0, 'output': 2.0, 'source': 'our contract', 'read': '2026-11-30'}}}))
    monkeypatch.setenv(PRICES_ENV_VAR, str(good))
    p = load_prices()
    assert (p['simulated-v1'].input, p['simulated-v1'].source) == (1.0, 'our contract') and 'gemini-2.5-flash' in p
    assert load_prices(overrides={'simulated-v1': (3, 4)})['simulated-v1'].source == 'override'
    monkeypatch.setenv(PRICES_ENV_VAR, str(tmp_path/'missing.json'))
    with pytest.raises(FileNotFoundError, match='missing.json'): load_prices()


def test_reproduce_dry_run_then_the_run(tmp_path, capsys, monkeypatch):
    """`reproduce --dry-run` on an empty store, then the reproduction: the same number of requests (tournaments and
    captions exactly, the smoke recipe's three cycles always run); the bill's calls are an upper bound (two seeds may
    draw a group twice, a hit then)."""
    monkeypatch.setenv('PAPER_DISTILL_HOME', str(tmp_path/'home'))
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    args = ['reproduce', '--profile', 'smoke', '--teacher', 'simulated', '--store', str(tmp_path/'store'), '--cache', str(tmp_path/'cache'),
            '--out', str(tmp_path/'figures'), '--only', 'table1', '--workers', '1', '--quiet']
    assert main(args + ['--dry-run']) == 0
    b = bill_line(capsys.readouterr().out)['bill']
    assert not (tmp_path/'store').exists() and not (tmp_path/'cache').exists()
    assert main(args) == 0
    real = teacher_line(capsys.readouterr().out)['teacher']
    assert real['requests'] == b['requests'] and real['hits'] >= b['hits'] and real['calls'] <= b['calls']
    assert main(args + ['--dry-run']) == 0        # the run cache is keyed by the store's records, which grew: every pair runs again
    again = bill_line(capsys.readouterr().out)['bill']
    assert again['requests'] == b['requests'] and again['hits'] >= real['requests'] - real['calls']   # tournaments, captions: stored now
