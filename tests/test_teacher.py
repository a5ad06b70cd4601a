"""The real GeminiTeacher (google-genai client) against a local generateContent server: request shape, injected faults,
bad answers, timeouts, secrecy of the API key, replay without HTTP, SIGKILL and resume, Batch API files and the Batch API end to end (upload, job, poll, download, ingest)."""
import io, json, logging, os, signal, subprocess, sys, textwrap, threading, time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import random_images
from PIL import Image

from paper_distill.fake_gemini import FakeGemini, b64bytes, good_answer, decide
from paper_distill.core import hash_image
from paper_distill.store import TeacherStore
from paper_distill.prompts import rank_request, pair_request, caption_request, shown_order, Request, TEMPLATES, ImageRef
from paper_distill.teacher import ReplayTeacher, StoreMiss, TeacherFailure
from paper_distill.gemini import GeminiTeacher, MissingAPIKey, RateLimit, gemini_spec, BATCH_DONE

ROOT = Path(__file__).resolve().parents[1]
SENTINEL = 'sentinel-KEY-9f2c7e41-do-not-leak'
MODEL = 'gemini-test'
FAST = dict(backoff_s=0.005, max_backoff_s=0.02)  # tiny backoff delays keep the fault tests quick


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv('GEMINI_API_KEY', SENTINEL)
    monkeypatch.delenv('GOOGLE_API_KEY', raising=False)
    monkeypatch.delenv('PAPER_DISTILL_GEMINI_MODEL', raising=False)


@pytest.fixture
def server():
    with FakeGemini(expected_key=SENTINEL, seed=0) as s: yield s


images = random_images


def teacher(store, server, **kw):
    return GeminiTeacher(store, model=MODEL, base_url=server.url, **{**FAST, 'concurrency': 4, **kw})


def shown_hashes(body):
    "Content hashes of the images in a logged request body, in the order they were sent."
    return [hash_image(b) for b in decide(body)['imgs']]


def expected_value(task, req, body):
    "What the server decided, mapped back to the caller's image indices by content hash (independent of the teacher)."
    order = decide(body)['order']
    pos = {h: i for i, h in enumerate(req.hashes)}
    sent = shown_hashes(body)
    if task == 'rank': return [pos[sent[i]] for i in order]
    return pos[sent[order[0]]]


# ---------------------------------------------------------------- request shape and answers

@pytest.mark.parametrize('structured', [True, False])
def test_request_shape_and_answers(tmp_path, server, key_env, structured):
    t = teacher(tmp_path/'s', server, structured=structured)
    ims = images(5)
    req = rank_request('a beekeeper who restores old motorbikes', ims)
    got = t.rank(req.persona, ims)
    e = server.answered()[0]
    assert e['path'] in (f'/v1/models/{MODEL}:generateContent', f'/v1beta/models/{MODEL}:generateContent')
    assert e['key_ok']
    parts = e['body']['contents'][0]['parts']
    texts = [p['text'] for p in parts if 'text' in p]
    assert 'a beekeeper who restores old motorbikes' in texts[0]
    assert texts[1:] == ['Image 1:', 'Image 2:', 'Image 3:', 'Image 4:', 'Image 5:']
    inline = [p.get('inlineData') or p.get('inline_data') for p in parts if 'inlineData' in p or 'inline_data' in p]
    assert len(inline) == 5
    assert all((d.get('mimeType') or d.get('mime_type')) == 'image/png' for d in inline)
    for d in inline: assert Image.open(io.BytesIO(b64bytes(d['data']))).format == 'PNG'
    # the images went in the recorded shuffled order, pixel for pixel
    assert shown_hashes(e['body']) == [req.hashes[i] for i in shown_order(req, 0)]
    assert shown_hashes(e['body']) != list(req.hashes)
    gc = e['body']['generationConfig']
    assert gc['temperature'] == 0 and gc['seed'] == 0
    if structured:
        assert gc['responseMimeType'] == 'application/json' and gc['responseJsonSchema'] == TEMPLATES['rank-json-v1'].schema
        assert json.loads(e['answer'])['ranking']
    else:
        assert 'responseMimeType' not in gc and ',' in e['answer']
    assert got == expected_value('rank', req, e['body'])
    # the store holds the answer in shown order, with the model and usage the server reported
    rec = t.store.get(t.store_request(req)[0])
    assert rec['model'] == MODEL and rec['raw_text'] == e['answer']
    assert rec['request']['image_hashes'] == shown_hashes(e['body'])
    assert rec['usage'] == {'input_tokens': e['usage']['promptTokenCount'], 'output_tokens': e['usage']['candidatesTokenCount']}


def test_pair_and_caption(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    a, b, c = images(3, seed=1)
    for pr in [(a, b), (b, a), (a, c), (c, b)]:
        req = pair_request('a chess coach in Lisbon', pr)
        got = t.pair(req.persona, list(pr))
        assert got == expected_value('pair', req, server.answered()[-1]['body'])
    cap = t.caption(a)
    e = server.answered()[-1]
    assert 'persona' not in e['body']['contents'][0]['parts'][0]['text'].lower()
    assert cap == json.loads(e['answer'])['caption'] and cap.startswith('a product photo')


def test_images_downscaled_to_384(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    big = [np.full((500, 800, 3), v, np.uint8) for v in (10, 200)]
    t.pair('a potter', big)
    sizes = [Image.open(io.BytesIO(b)).size for b in decide(server.answered()[0]['body'])['imgs']]
    assert sizes == [(384, 240), (384, 240)]


# ---------------------------------------------------------------- faults

def test_429_and_503_are_retried_until_every_request_is_labelled(tmp_path, server, key_env):
    server.p429, server.p503 = 0.10, 0.05
    t = teacher(tmp_path/'s', server, concurrency=8)
    reqs = [rank_request(f'persona {i}', images(5, seed=100 + i)) for i in range(60)]
    res = t.label(reqs)
    assert all(r.ok for r in res), [r.error for r in res if not r.ok]
    assert server.count(429) > 0 and server.count(503) > 0
    assert t.stats['retries'] == server.count(429) + server.count(503)
    assert len(t.store) == 60
    for r, req in zip(res, reqs): assert sorted(r.value) == list(range(5))
    # each request answered exactly once (retries hit only faults), and the answers are the server's
    assert Counter(e['body_hash'] for e in server.answered()).most_common(1)[0][1] == 1
    by_persona = {e['body']['contents'][0]['parts'][0]['text'].split('Customer: ')[1].split('\n')[0]: e for e in server.answered()}
    for r, req in zip(res, reqs): assert r.value == expected_value('rank', req, by_persona[req.persona]['body'])


def test_retries_give_up_after_max_retries(tmp_path, server, key_env):
    server.p429 = 1.0
    t = teacher(tmp_path/'s', server, max_retries=3)
    with pytest.raises(TeacherFailure, match='gave up after 4 tries; last HTTP 429'): t.rank('a florist', images(3))
    assert server.count(429) == 4 and len(t.store) == 0


@pytest.mark.parametrize('marker', ['malformed', 'truncated', 'nonperm', 'empty'])
@pytest.mark.parametrize('task', ['rank', 'pair'])
def test_bad_answers_are_retried_then_reported_never_stored(tmp_path, server, key_env, marker, task):
    t = teacher(tmp_path/'s', server, max_invalid=2)
    ims = images(5 if task == 'rank' else 2, seed=7)
    good = Request(task, 'a quiet librarian', tuple(ims))
    bad = Request(task, f'a quiet librarian [[{marker}]]', tuple(ims))
    res = t.label([bad, good])
    assert not res[0].ok and res[1].ok
    assert 'answers rejected' in res[0].error
    assert server.count(200) == 3 + 1             # three tries of the bad one, one of the good one
    assert t.stats['rejected'] == 3 and t.stats['failures'] == 1
    assert len(t.store) == 1 and t.store_request(bad)[0].key not in t.store
    if marker == 'truncated': assert 'MAX_TOKENS' in res[0].error
    with pytest.raises(TeacherFailure): (t.rank if task == 'rank' else t.pair)(bad.persona, ims)


def test_flaky_answer_is_retried_and_stored(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    assert sorted(t.rank('a roofer [[flaky]]', images(4))) == [0, 1, 2, 3]
    assert server.count(200) == 2 and t.stats['rejected'] == 1 and len(t.store) == 1


def test_timeouts_are_retried(tmp_path, key_env):
    with FakeGemini(expected_key=SENTINEL, slow_s=1.5) as server:
        t = teacher(tmp_path/'s', server, timeout_s=0.4)
        req = pair_request('a glassblower [[slow-once]]', images(2))
        got = t.pair(req.persona, req.images)
        assert t.stats['retries'] >= 1 and server.count(200) == 1        # the slow first try timed out, the retry answered
        assert got == expected_value('pair', req, server.answered()[-1]['body'])


def test_concurrency_is_bounded(tmp_path, key_env):
    with FakeGemini(expected_key=SENTINEL, latency_s=0.1) as server:
        t = teacher(tmp_path/'s', server, concurrency=4)
        assert all(r.ok for r in t.label([pair_request(f'p{i}', images(2, seed=i, px=8)) for i in range(16)]))
        assert 1 < server.max_in_flight <= 4          # the server counted the calls it was answering at once


def test_rate_limit_spaces_request_starts_across_threads(tmp_path, key_env):
    "Eight threads asking a 20-per-second limit for 40 starts get 40 distinct slots exactly 1/20 s apart (a fake clock: no waiting)."
    clock = dict(t=0.0); lock = threading.Lock()
    def sleep(s):
        with lock: clock['t'] = max(clock['t'], clock['t'] + s)
    rl = RateLimit(20, clock=lambda: clock['t'], sleep=sleep)
    with ThreadPoolExecutor(8) as ex: granted = sorted(ex.map(lambda _: rl.wait(), range(40)))
    assert np.allclose(np.diff(granted), 0.05) and granted[0] == 0.0
    with FakeGemini(expected_key=SENTINEL) as server:
        t = teacher(tmp_path/'s', server, max_rps=20)
        assert t.rate.gap == 0.05 and teacher(tmp_path/'s2', server).rate.gap == 0


# ---------------------------------------------------------------- tokens, cost, store hits

def test_tokens_and_cost_match_the_server(tmp_path, server, key_env):
    server.p429 = 0.1
    t = teacher(tmp_path/'s', server, price_per_mtok=(0.10, 0.40))
    reqs = [rank_request(f'persona {i}', images(3, seed=i)) for i in range(12)] + [rank_request('x [[malformed]]', images(3))]
    t.label(reqs)
    resp = server.answered()                          # every 200 the server sent, with the usage it reported
    n_in = sum(e['usage']['promptTokenCount'] for e in resp)
    n_out = sum(e['usage']['candidatesTokenCount'] for e in resp)
    s = t.stats
    assert (s['input_tokens'], s['output_tokens']) == (n_in, n_out)
    assert s['cost_usd'] == pytest.approx((n_in * 0.10 + n_out * 0.40) / 1e6)
    assert s['calls'] == len(resp) and s['misses'] == 13
    t.reset_stats(); t.label(reqs[:12])
    assert t.stats['hits'] == 12 and t.stats['calls'] == 0


def test_duplicate_requests_in_a_batch_are_asked_once(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    ims = images(3)
    res = t.label([rank_request('a welder', ims), rank_request('a welder', ims), rank_request('a welder', ims[::-1])])
    assert server.count() == 1                        # same images in another order: same shown order, same key
    assert res[0].value == res[1].value
    assert res[2].value == [2 - v for v in res[0].value]      # the same ranking, in the reversed list's indices


# ---------------------------------------------------------------- failures stay with their request; each image encoded once

def test_a_model_name_the_sdk_refuses_fails_each_request_not_the_run(tmp_path, server, key_env):
    t = GeminiTeacher(tmp_path/'s', model='gemini..test', base_url=server.url, concurrency=3, **FAST)   # google-genai refuses '..' before any HTTP
    reqs = [rank_request(f'persona {i}', images(3, seed=i)) for i in range(5)]
    res = t.label(reqs)
    assert not any(r.ok for r in res) and server.count() == 0 and len(t.store) == 0
    assert all('invalid model parameter' in r.error and r.request.describe() in r.error for r in res)
    assert t.stats['failures'] == 5
    with pytest.raises(ValueError, match='invalid model parameter'): t.rank(reqs[0].persona, reqs[0].images)   # a single call raises it


def test_an_image_that_cannot_be_read_when_sent_fails_its_request_only(tmp_path, server, key_env):
    good = images(8, seed=3)
    bad_file = tmp_path/'cut.jpg'
    Image.fromarray(images(1, seed=9, px=600)[0]).save(bad_file, 'JPEG')   # above 384 px: decoded to be sent
    bad_file.write_bytes(bad_file.read_bytes()[:20_000])                      # cut short: the catalog's hash came from the whole file
    bad = ImageRef('c' * 64, str(bad_file))
    reqs = [rank_request(f'persona {i}', good[i:i + 3]) for i in range(5)] + [rank_request('persona x', [good[0], bad, good[1]])]
    t = teacher(tmp_path/'s', server, concurrency=3)
    res = t.label(reqs)
    assert [r.ok for r in res] == [True] * 5 + [False]
    assert f"image {bad_file} cannot be read" in res[5].error and "persona='persona x'" in res[5].error and 'cccccccccc' in res[5].error
    assert len(server.answered()) == 5 and len(t.store) == 5


def test_each_image_is_encoded_once_per_content(tmp_path, server, key_env):
    "Forty requests over eight photo files: eight encodings, whatever the number of requests and threads."
    from paper_distill.gemini import IMAGE_CACHE
    files = []
    for i, a in enumerate(images(8, seed=40, px=500)):                       # above 384 px: decoded, downscaled, re-encoded
        Image.fromarray(a).save(tmp_path/f'{i}.jpg', 'JPEG', quality=90); files.append(str(tmp_path/f'{i}.jpg'))
    rng = np.random.default_rng(0)
    reqs = [rank_request(f'persona {i}', [files[j] for j in rng.choice(8, 4, replace=False)]) for i in range(40)]
    m0 = IMAGE_CACHE.misses
    res = teacher(tmp_path/'s', server, concurrency=8).label(reqs)
    assert all(r.ok for r in res) and len(server.answered()) == 40
    assert IMAGE_CACHE.misses - m0 == 8
    sent = {hash_image(b) for e in server.answered() for b in decide(e['body'])['imgs']}
    assert len(sent) == 8                                                     # the same bytes each time a photo was shown


# ---------------------------------------------------------------- replay and missing key

def test_replay_of_a_complete_store_makes_no_http_request(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    groups = [(f'persona {i}', images(4, seed=i)) for i in range(10)]
    want = t.rank_many(groups)
    n = server.count()
    rep = ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL))
    assert rep.rank_many(groups) == want
    assert teacher(tmp_path/'s', server).rank_many(groups) == want      # a live teacher also finds them all
    assert server.count() == n
    with pytest.raises(StoreMiss, match="persona='persona 3'.*model 'gemini-other'.*Fill it"):
        ReplayTeacher(tmp_path/'s', **gemini_spec('gemini-other')).rank(*groups[3])
    with pytest.raises(StoreMiss, match='template'):                   # another prompt format is another request
        ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL, structured=False)).rank(*groups[3])
    assert server.count() == n


def test_missing_api_key_fails_at_construction(tmp_path, monkeypatch):
    for v in ('GEMINI_API_KEY', 'GOOGLE_API_KEY'): monkeypatch.delenv(v, raising=False)
    with pytest.raises(MissingAPIKey, match=r'set \$GEMINI_API_KEY'): GeminiTeacher(tmp_path/'s', model=MODEL)
    monkeypatch.setenv('GOOGLE_API_KEY', SENTINEL)
    monkeypatch.delenv('PAPER_DISTILL_GEMINI_MODEL', raising=False)
    with pytest.raises(ValueError, match='no Gemini model named'): GeminiTeacher(tmp_path/'s')
    assert GeminiTeacher(tmp_path/'s', model=MODEL).model == MODEL


def test_api_key_never_leaks(tmp_path, key_env, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with FakeGemini(expected_key=SENTINEL, p429=0.2, echo_key=True) as server:
        t = teacher(tmp_path/'s', server)
        res = t.label([rank_request(f'persona {i}', images(3, seed=i)) for i in range(8)] + [rank_request('x [[malformed]]', images(3))])
        assert sum(r.ok for r in res) == 8
        texts += [str(r.error) for r in res] + [repr(t), json.dumps(t.stats), json.dumps(t.spec(), default=str)]
        server.expected_key = 'another-key'          # now the server refuses the key and echoes it back
        with pytest.raises(TeacherFailure) as ei: t.rank('a tailor', images(3, seed=99))
        texts += [str(ei.value), repr(ei.value)]
        assert 'HTTP 403' in str(ei.value) and '***' in str(ei.value)
    snap = tmp_path/'snap.jsonl'; t.store.export_jsonl(snap)
    texts += [caplog.text, snap.read_text()]
    store_bytes = b''.join(p.read_bytes() for p in (tmp_path/'s').rglob('*') if p.is_file())
    assert SENTINEL.encode() not in store_bytes
    for x in texts: assert SENTINEL not in x
    assert len(t.store) == 8


# ---------------------------------------------------------------- SIGKILL half way, then resume

LABELLER = textwrap.dedent('''
    import sys, numpy as np
    from paper_distill.gemini import GeminiTeacher
    from paper_distill.prompts import rank_request
    url, store, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = np.random.default_rng(0)
    reqs = [rank_request(f"persona {i}", [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(4)]) for i in range(n)]
    t = GeminiTeacher(store, model="gemini-test", base_url=url, concurrency=4, backoff_s=0.01, max_backoff_s=0.05)
    res = t.label(reqs, progress=True)
    print("LABELLED", sum(r.ok for r in res), "CALLS", t.stats["calls"], flush=True)
    ''')


def test_sigkill_half_way_then_resume(tmp_path, key_env):
    n, conc = 60, 4
    script = tmp_path/'labeller.py'; script.write_text(LABELLER)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    with FakeGemini(expected_key=SENTINEL, latency_s=0.05) as server:
        cmd = [sys.executable, str(script), server.url, str(tmp_path/'s'), str(n)]
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while server.count(200) < n // 2 and time.time() < deadline and p.poll() is None: time.sleep(0.01)
        assert p.poll() is None, "the labeller finished before it could be killed"
        os.kill(p.pid, signal.SIGKILL); p.wait()
        time.sleep(0.3)                               # let answers already on the wire finish
        first_run = server.count(200)
        with TeacherStore(tmp_path/'s') as st: stored_at_kill = len(st)
        assert 0 < stored_at_kill < n
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        assert f'LABELLED {n}' in out.stdout
        answered = Counter(e['body_hash'] for e in server.answered())
    with TeacherStore(tmp_path/'s') as st: assert len(st) == n
    dup = sum(c - 1 for c in answered.values())
    in_flight = first_run - stored_at_kill            # answered by the server but never stored before the kill
    assert dup == in_flight <= conc
    assert len(answered) == n
    assert f'CALLS {n - stored_at_kill}' in out.stdout   # the rerun asked only for what was missing


# ---------------------------------------------------------------- Batch API files

def test_batch_file_roundtrip(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    reqs = [rank_request(f'persona {i}', images(4, seed=i)) for i in range(10)]
    t.label(reqs[:2])
    n = t.write_batch(reqs + reqs[:1], tmp_path/'job.jsonl')
    lines = [json.loads(l) for l in (tmp_path/'job.jsonl').read_text().splitlines()]
    assert n == len(lines) == 8                       # the two stored requests and the duplicate are left out
    assert [l['key'] for l in lines] == [t.store_request(r)[0].key for r in reqs[2:]]
    # play the Batch service: answer each line as the server would, break two of them
    out = []
    for i, l in enumerate(lines):
        text = good_answer(l['request'])
        if i == 0: out.append({'key': l['key'], 'error': {'code': 500, 'message': 'internal'}}); continue
        if i == 1: text = '{"ranking": [1, 1, 2, 3]}'
        out.append({'key': l['key'], 'response': {'candidates': [{'content': {'parts': [{'text': text}], 'role': 'model'},
                    'finishReason': 'STOP'}], 'usageMetadata': {'promptTokenCount': 1100, 'candidatesTokenCount': 9}, 'modelVersion': MODEL}})
    out.append({'key': 'f' * 64, 'response': {}})
    (tmp_path/'results.jsonl').write_text('\n'.join(json.dumps(o) for o in out))
    counts = t.ingest_batch(tmp_path/'results.jsonl', tmp_path/'job.jsonl.manifest.jsonl')
    assert counts == dict(stored=6, already=0, rejected=1, errors=1, unknown=1, failed=[lines[0]['key'], lines[1]['key']])
    assert len(t.store) == 8
    # the batch answers are the ones the live endpoint gives for the same requests
    live = teacher(tmp_path/'live', server)
    rep = ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL))
    assert rep.rank_many([(r.persona, r.images) for r in reqs[4:]]) == live.rank_many([(r.persona, r.images) for r in reqs[4:]])
    with pytest.raises(StoreMiss): rep.rank(reqs[2].persona, reqs[2].images)    # the failed ones are still missing


def test_batch_api_end_to_end(tmp_path, key_env, caplog):
    """write_batch → submit_batch (resumable upload + batchGenerateContent) → poll → download_batch → ingest_batch through
    the real google-genai client and a local Batch API: valid answers stored, failed lines reported and not stored,
    then replayed with no HTTP request; the API key travels only in its header."""
    caplog.set_level(logging.DEBUG)
    with FakeGemini(expected_key=SENTINEL, batch_polls=3) as server:
        t = teacher(tmp_path/'s', server)
        good = [rank_request(f'persona {i}', images(4, seed=i)) for i in range(8)] + \
               [pair_request('a cooper', images(2, seed=50)), caption_request(images(1, seed=51)[0])]
        bad = [rank_request('a mason [[batch-error]]', images(4, seed=60)), rank_request('a tiler [[nonperm]]', images(4, seed=61)),
               pair_request('a smith [[malformed]]', images(2, seed=62))]
        job = tmp_path/'job.jsonl'
        assert t.write_batch(good + bad, job) == 13
        name = t.submit_batch(job)
        # what the service received: the file byte for byte, as JSONL, and a job over it for the teacher's model
        (start,), chunks, (create,) = server.of_kind('upload-start'), server.of_kind('upload'), server.of_kind('batch-create')
        assert start['upload_headers']['X-Goog-Upload-Protocol'] == 'resumable' and start['upload_headers']['X-Goog-Upload-Header-Content-Type'] == 'jsonl'
        assert b''.join(c['raw'] for c in chunks) == job.read_bytes()
        assert chunks[-1]['upload_headers']['X-Goog-Upload-Command'] == 'upload, finalize'
        fid = json.loads(create['raw'])['batch']['inputConfig']['fileName']
        assert server.files[fid.split('/')[-1]]['data'] == job.read_bytes() and create['model'] == MODEL
        assert name == f"batches/{next(iter(server.batches))}"
        with pytest.raises(RuntimeError, match='JOB_STATE_RUNNING, not JOB_STATE_SUCCEEDED'): t.download_batch(name, tmp_path/'early.jsonl')
        assert not (tmp_path/'early.jsonl').exists()
        states = [t.batch_state(name)]
        while states[-1] not in BATCH_DONE: states.append(t.batch_state(name)); assert len(states) < 10
        assert states == ['JOB_STATE_RUNNING', 'JOB_STATE_SUCCEEDED']           # polls 2 and 3 of batch_polls=3
        out = t.download_batch(name, tmp_path/'results.jsonl')
        assert out.read_bytes() == server.files[f"batch-{name.split('/')[-1]}"]['data']
        counts = t.ingest_batch(out, tmp_path/'job.jsonl.manifest.jsonl')
        bad_keys = [t.store_request(r)[0].key for r in bad]
        assert counts == dict(stored=10, already=0, rejected=2, errors=1, unknown=0, failed=bad_keys)
        assert len(t.store) == 10 and not any(k in t.store for k in bad_keys)
        # each stored answer is the one the service decided for the line it was sent (mapped back independently)
        bodies = {l['key']: l['request'] for l in map(json.loads, job.read_text().splitlines())}
        n = server.count()
        rep = ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL))
        for r in good:
            body = bodies[t.store_request(r)[0].key]
            got = {'rank': rep.rank, 'pair': rep.pair, 'caption': lambda p, ims: rep.caption(ims[0])}[r.task](r.persona, list(r.images))
            assert got == (json.loads(good_answer(body))['caption'] if r.task == 'caption' else expected_value(r.task, r, body))
            assert t.store.get(t.store_request(r)[0])['versions']['gemini_batch'] == 'true'
        for r in bad:
            with pytest.raises(StoreMiss): rep.rank(r.persona, list(r.images)) if r.task == 'rank' else rep.pair(r.persona, list(r.images))
        assert server.count() == n                                            # the replay made no HTTP request at all
        assert t.write_batch(good + bad, tmp_path/'again.jsonl') == 3           # a new job holds exactly the failed lines
        assert [json.loads(l)['key'] for l in (tmp_path/'again.jsonl').read_text().splitlines()] == bad_keys
        # wait_batch: gives up after timeout_s while the job runs, returns the final state once it has ended
        server.batch_polls = 10**6
        name2 = t.submit_batch(tmp_path/'again.jsonl', display_name='retry')
        with pytest.raises(TimeoutError, match='still JOB_STATE_RUNNING'): t.wait_batch(name2, poll_s=0.01, timeout_s=0.05)
        server.batch_polls = 0
        assert t.wait_batch(name2, poll_s=0.01) == 'JOB_STATE_SUCCEEDED'
        assert server.batches[name2.split('/')[-1]]['op']['metadata']['displayName'] == 'retry'
        # the key: sent as a header to every call but the upload session's, never in a path, body, file or message
        for e in server.log:
            assert SENTINEL not in e['path'] and SENTINEL.encode() not in e['raw']
            assert e['key_ok'] if e['kind'] != 'upload' else not e['has_key']
        server.expected_key, server.echo_key = 'another-key', True            # a service that refuses the key and echoes it
        with pytest.raises(TeacherFailure) as ei: t.batch_state(name)
        assert 'HTTP 403' in str(ei.value) and '***' in str(ei.value) and SENTINEL not in str(ei.value)
        with pytest.raises(TeacherFailure, match=r'upload of again\.jsonl: HTTP 403'): t.submit_batch(tmp_path/'again.jsonl')
    files = [job, tmp_path/'job.jsonl.manifest.jsonl', out] + [p for p in (tmp_path/'s').rglob('*') if p.is_file()]
    assert all(SENTINEL.encode() not in p.read_bytes() for p in files)
    assert SENTINEL not in caplog.text
