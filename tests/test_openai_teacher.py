"""The OpenAITeacher (the real `openai` client) against a local chat-completions server: request shape, labels for
rank / pair / caption, injected faults (429 with and without Retry-After, 503, timeouts), bad answers rejected and
re-asked and never stored, concurrency, tokens and cost, replay with no HTTP request, stores that never replay as
another teacher, keys from the environment that never leak, and a local server that needs no key."""
import json, logging
from collections import Counter

import pytest
from helpers import random_images

from paper_distill.core import hash_image
from paper_distill.prompts import Request, TEMPLATES, pair_request, rank_request, shown_order
from paper_distill.store import TeacherStore
from paper_distill.teacher import ReplayTeacher, StoreMiss, TeacherFailure
from paper_distill.gemini import GeminiTeacher, MissingAPIKey, gemini_spec
from paper_distill.fake_gemini import FakeGemini
from paper_distill.fake_openai import FakeOpenAI, decide
from paper_distill.openai_teacher import OpenAITeacher, openai_spec

SENTINEL = 'sk-sentinel-KEY-3b8e61d0-do-not-leak'
MODEL = 'vision-test'
FAST = dict(backoff_s=0.005, max_backoff_s=0.02)  # tiny backoff delays keep the fault tests quick
ENV = ('OPENAI_API_KEY', 'OPENAI_BASE_URL', 'PAPER_DISTILL_OPENAI_BASE_URL', 'PAPER_DISTILL_OPENAI_MODEL', 'OPENAI_ORG_ID',
       'OPENAI_PROJECT_ID', 'OPENAI_CUSTOM_HEADERS', 'GEMINI_API_KEY', 'GOOGLE_API_KEY')


@pytest.fixture
def key_env(monkeypatch):
    for v in ENV: monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv('OPENAI_API_KEY', SENTINEL)


@pytest.fixture
def server():
    with FakeOpenAI(expected_key=SENTINEL, seed=0) as s: yield s


images = random_images


def teacher(store, server, **kw):
    return OpenAITeacher(store, model=MODEL, base_url=server.url, **{**FAST, 'concurrency': 4, **kw})


def expected_value(task, req, body):
    "What the server decided, mapped back to the caller's image indices by content hash (independent of the teacher)."
    d = decide(body)
    pos = {h: i for i, h in enumerate(req.hashes)}
    sent = [hash_image(b) for b in d['imgs']]
    if task == 'rank': return [pos[sent[i]] for i in d['order']]
    return pos[sent[d['order'][0]]]


def persona_of(body):
    return body['messages'][0]['content'][0]['text'].split('Customer: ')[1].split('\n')[0]


# ---------------------------------------------------------------- request shape and labels

@pytest.mark.parametrize('structured', [True, False])
def test_request_shape_and_rank_answers(tmp_path, server, key_env, structured):
    t = teacher(tmp_path/'s', server, structured=structured)
    ims = images(5)
    req = rank_request('a beekeeper who restores old motorbikes', ims)
    got = t.rank(req.persona, ims)
    (e,) = server.answered()
    assert e['path'] == '/v1/chat/completions' and e['key_ok'] and e['model'] == MODEL
    content = e['body']['messages'][0]['content']
    assert [p['type'] for p in content] == ['text'] + ['text', 'image_url'] * 5
    assert 'a beekeeper who restores old motorbikes' in content[0]['text']
    assert [p['text'] for p in content[1::2]] == ['Image 1:', 'Image 2:', 'Image 3:', 'Image 4:', 'Image 5:']
    assert decide(e['body'])['mimes'] == ['image/png'] * 5
    sent = [hash_image(b) for b in decide(e['body'])['imgs']]
    assert sent == [req.hashes[i] for i in shown_order(req, 0)] and sent != list(req.hashes)   # shuffled, pixel for pixel
    assert e['body']['temperature'] == 0 and e['body']['seed'] == 0
    if structured:
        rf = e['body']['response_format']
        assert rf['type'] == 'json_schema' and rf['json_schema']['schema'] == TEMPLATES['rank-json-v1'].schema
        assert json.loads(e['answer'])['ranking']
    else: assert 'response_format' not in e['body'] and ',' in e['answer']
    assert got == expected_value('rank', req, e['body'])
    rec = t.store.get(t.store_request(req)[0])
    assert rec['model'] == MODEL and rec['raw_text'] == e['answer'] and rec['request']['image_hashes'] == sent
    assert rec['usage'] == {'input_tokens': e['usage']['prompt_tokens'], 'output_tokens': e['usage']['completion_tokens']}
    assert rec['request']['teacher_id'] == f"openai-compatible:{server.url.split('://')[1]}"


def test_pair_and_caption(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    a, b, c = images(3, seed=1)
    for pr in [(a, b), (b, a), (a, c), (c, b)]:
        req = pair_request('a chess coach in Lisbon', pr)
        assert t.pair(req.persona, list(pr)) == expected_value('pair', req, server.answered()[-1]['body'])
    cap = t.caption(a)
    e = server.answered()[-1]
    assert cap == json.loads(e['answer'])['caption'] and cap.startswith('a product photo')
    assert len(t.store) == server.count(200) == 4      # (a, b) and (b, a) are one question: one call


def test_the_model_the_server_names_is_recorded(tmp_path, key_env):
    with FakeOpenAI(expected_key=SENTINEL, reported_model=f'{MODEL}-2026-01-01') as server:
        t = teacher(tmp_path/'s', server)
        req = pair_request('a cartographer', images(2))
        t.pair(req.persona, req.images)
        assert t.store.get(t.store_request(req)[0])['model'] == f'{MODEL}-2026-01-01'


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
    assert Counter(e['body_hash'] for e in server.answered()).most_common(1)[0][1] == 1   # each answered once
    by_persona = {persona_of(e['body']): e for e in server.answered()}
    for r, req in zip(res, reqs): assert r.value == expected_value('rank', req, by_persona[req.persona]['body'])


def _recording(t):
    "Make `t` record the delays it sleeps between tries (and sleep them, shortened)."
    slept = []
    def sleep(s): slept.append(s)
    t._sleep = sleep
    return slept


def test_retry_after_is_honoured_up_to_the_cap(tmp_path, key_env):
    with FakeOpenAI(expected_key=SENTINEL, retry_after_s=7) as server:
        t = teacher(tmp_path/'s', server)
        slept = _recording(t)
        req = pair_request('a luthier [[429-once]]', images(2))
        assert t.pair(req.persona, req.images) == expected_value('pair', req, server.answered()[-1]['body'])
        assert server.count(429) == 1 and t.stats['retries'] == 1
        assert slept == [7.0]                             # the server's hint, not the 5-20 ms backoff
        t2 = teacher(tmp_path/'s2', server, max_retry_after_s=2.5)
        slept2 = _recording(t2)
        t2.pair('a cooper [[429-once]]', images(2))
        assert slept2 == [2.5]                            # capped
        server.retry_after_s = None
        t3 = teacher(tmp_path/'s3', server)
        slept3 = _recording(t3)
        t3.pair('a thatcher [[429-once]]', images(2))
        assert len(slept3) == 1 and 0.0025 <= slept3[0] <= 0.005   # no hint: backoff_s with jitter


def test_retries_give_up_after_max_retries(tmp_path, server, key_env):
    server.p429 = 1.0
    t = teacher(tmp_path/'s', server, max_retries=3)
    with pytest.raises(TeacherFailure, match='gave up after 4 tries; last HTTP 429'): t.rank('a florist', images(3))
    assert server.count(429) == 4 and len(t.store) == 0


def test_timeouts_are_retried(tmp_path, key_env):
    with FakeOpenAI(expected_key=SENTINEL, slow_s=1.5) as server:
        t = teacher(tmp_path/'s', server, timeout_s=0.4)
        req = pair_request('a glassblower [[slow-once]]', images(2))
        got = t.pair(req.persona, req.images)
        assert (t.stats['retries'], t.stats['calls']) == (1, 1)       # the slow first try timed out, the retry answered
        assert got == expected_value('pair', req, server.answered()[-1]['body'])
        assert t.store.get(t.store_request(req)[0])['latency_s'] < 1.5   # the answering call's time, not the timed-out one's


def test_other_http_errors_fail_at_once(tmp_path, key_env):
    with FakeOpenAI(expected_key=SENTINEL, models={'served-model'}) as server:
        t = teacher(tmp_path/'s', server)
        res = t.label([rank_request('a farrier', images(3)), rank_request('a cutler', images(3, seed=1))])
        assert all('HTTP 404' in r.error and 'does not exist' in r.error for r in res)
        assert server.count(404) == 2 and t.stats['retries'] == 0 and len(t.store) == 0


@pytest.mark.parametrize('marker', ['malformed', 'truncated', 'nonperm', 'empty', 'refusal', 'filtered', 'garbage'])
@pytest.mark.parametrize('task', ['rank', 'pair'])
def test_bad_answers_are_reasked_then_reported_never_stored(tmp_path, server, key_env, marker, task):
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
    reason = dict(truncated='MAX_TOKENS', filtered='SAFETY', refusal='REFUSAL', garbage='NOT_A_COMPLETION').get(marker)
    if reason: assert reason in res[0].error
    with pytest.raises(TeacherFailure): (t.rank if task == 'rank' else t.pair)(bad.persona, ims)


def test_flaky_answer_is_reasked_and_stored(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    assert sorted(t.rank('a roofer [[flaky]]', images(4))) == [0, 1, 2, 3]
    assert server.count(200) == 2 and t.stats['rejected'] == 1 and len(t.store) == 1


def test_several_requests_in_flight_bounded_by_concurrency(tmp_path, key_env):
    with FakeOpenAI(expected_key=SENTINEL, latency_s=0.1) as server:
        t = teacher(tmp_path/'s', server, concurrency=4)
        assert all(r.ok for r in t.label([pair_request(f'p{i}', images(2, seed=i, px=8)) for i in range(16)]))
        assert 1 < server.max_in_flight <= 4          # the server counted the calls it was answering at once
        assert len(t.store) == 16


def test_tokens_and_cost_match_the_server(tmp_path, server, key_env):
    server.p429 = 0.1
    t = teacher(tmp_path/'s', server, price_per_mtok=(0.15, 0.60))
    reqs = [rank_request(f'persona {i}', images(3, seed=i)) for i in range(12)] + [rank_request('x [[malformed]]', images(3))]
    t.label(reqs)
    resp = server.answered()
    n_in, n_out = sum(e['usage']['prompt_tokens'] for e in resp), sum(e['usage']['completion_tokens'] for e in resp)
    s = t.stats
    assert (s['input_tokens'], s['output_tokens']) == (n_in, n_out)
    assert s['cost_usd'] == pytest.approx((n_in * 0.15 + n_out * 0.60) / 1e6)
    assert s['calls'] == len(resp) == 12 + 3 and s['misses'] == 13


# ---------------------------------------------------------------- replay, and never as another teacher

def test_replay_from_the_store_makes_no_http_request(tmp_path, server, key_env, monkeypatch):
    t = teacher(tmp_path/'s', server)
    groups = [(f'persona {i}', images(4, seed=i)) for i in range(10)]
    want = t.rank_many(groups)
    n = server.count()
    assert ReplayTeacher(tmp_path/'s', **openai_spec(MODEL, server.url)).rank_many(groups) == want
    assert ReplayTeacher.like(t).rank_many(groups) == want
    assert teacher(tmp_path/'s', server).rank_many(groups) == want          # a live teacher also finds them all
    monkeypatch.delenv('OPENAI_API_KEY')                                    # replay needs no key
    assert ReplayTeacher(TeacherStore(tmp_path/'s', readonly=True), **openai_spec(MODEL, server.url)).rank_many(groups) == want
    assert server.count() == n
    with pytest.raises(StoreMiss, match='template'):                        # another prompt format is another request
        ReplayTeacher(tmp_path/'s', **openai_spec(MODEL, server.url, structured=False)).rank(*groups[3])
    with pytest.raises(StoreMiss, match="model 'vision-other'"):
        ReplayTeacher(tmp_path/'s', **openai_spec('vision-other', server.url)).rank(*groups[3])


def test_a_store_never_replays_as_another_teacher(tmp_path, server, key_env, monkeypatch):
    "One store filled by both teachers with the same model name: each replays only its own answers."
    monkeypatch.setenv('GEMINI_API_KEY', 'gemini-local-key')
    ims = images(4, seed=3)
    t = teacher(tmp_path/'s', server)
    t.rank('an orchard keeper', ims)
    for other in (gemini_spec(MODEL), openai_spec(MODEL, 'http://10.1.2.3:8000/v1')):   # Gemini; another server, same model name
        with pytest.raises(StoreMiss): ReplayTeacher(tmp_path/'s', **other).rank('an orchard keeper', ims)
    with FakeGemini(expected_key='gemini-local-key') as gsrv:
        g = GeminiTeacher(tmp_path/'s', model=MODEL, base_url=gsrv.url, **FAST)
        g.rank('an orchard keeper', ims)
        g.rank('a hedge layer', ims)
        assert gsrv.count(200) == 2 and g.stats['hits'] == 0                # the OpenAI answer was not served to Gemini
    with pytest.raises(StoreMiss): ReplayTeacher.like(t).rank('a hedge layer', ims)   # nor the Gemini one to this teacher
    n = server.count()
    t.reset_stats(); t.rank('a hedge layer', ims)
    assert server.count() == n + 1 and t.stats['hits'] == 0
    # naming the endpoint makes two URLs one teacher, on purpose
    named = [openai_spec(MODEL, u, endpoint='shared-box') for u in (server.url, 'http://10.1.2.3:8000/v1')]
    assert named[0] == named[1] and named[0]['teacher_id'] == 'openai-compatible:shared-box'
    nt = teacher(tmp_path/'s', server, endpoint='shared-box')
    nt.rank('an orchard keeper', ims)
    assert ReplayTeacher(tmp_path/'s', **named[1]).rank('an orchard keeper', ims) == nt.rank('an orchard keeper', ims)


# ---------------------------------------------------------------- configuration and keys

def test_model_and_base_url_from_the_environment(tmp_path, server, key_env, monkeypatch):
    monkeypatch.setenv('PAPER_DISTILL_OPENAI_BASE_URL', server.url)
    monkeypatch.setenv('PAPER_DISTILL_OPENAI_MODEL', MODEL)
    t = OpenAITeacher(tmp_path/'s', **FAST)
    assert (t.model, t.base_url) == (MODEL, server.url)
    assert sorted(t.rank('a weaver', images(3))) == [0, 1, 2] and server.count(200) == 1
    assert t.spec() == {**openai_spec(), 'templates': t.templates}
    monkeypatch.delenv('PAPER_DISTILL_OPENAI_MODEL')
    with pytest.raises(ValueError, match='no model named'): OpenAITeacher(tmp_path/'s')
    for url in (f'http://user:{SENTINEL}@127.0.0.1:9/v1', f'ftp://{SENTINEL}@127.0.0.1:x/v1'):
        with pytest.raises(ValueError, match='holds credentials') as ei: OpenAITeacher(tmp_path/'s', model=MODEL, base_url=url)
        assert SENTINEL not in str(ei.value)


def test_openai_needs_a_key_a_local_server_does_not(tmp_path, monkeypatch):
    for v in ENV: monkeypatch.delenv(v, raising=False)
    with pytest.raises(MissingAPIKey, match=r'set \$OPENAI_API_KEY'): OpenAITeacher(tmp_path/'s', model='gpt-4o-mini')
    with FakeOpenAI() as server:                                   # a local server that checks no key
        t = teacher(tmp_path/'s', server)
        assert sorted(t.rank('a sculptor', images(3))) == [0, 1, 2]
        assert [e['has_key'] for e in server.log] == [False]          # no Authorization header at all
    monkeypatch.setenv('MY_GATEWAY_KEY', SENTINEL)                  # a key from another variable
    with FakeOpenAI(expected_key=SENTINEL) as server:
        t = teacher(tmp_path/'s2', server, api_key_env='MY_GATEWAY_KEY')
        assert sorted(t.rank('a sculptor', images(3))) == [0, 1, 2] and server.log[-1]['key_ok']


def test_api_key_never_leaks(tmp_path, key_env, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    with FakeOpenAI(expected_key=SENTINEL, p429=0.2, echo_key=True) as server:
        t = teacher(tmp_path/'s', server)
        res = t.label([rank_request(f'persona {i}', images(3, seed=i)) for i in range(8)] + [rank_request('x [[malformed]]', images(3))])
        assert sum(r.ok for r in res) == 8
        texts += [str(r.error) for r in res] + [repr(t), json.dumps(t.stats), json.dumps(t.spec(), default=str)]
        server.expected_key = 'another-key'          # now the server refuses the key and echoes it back
        with pytest.raises(TeacherFailure) as ei: t.rank('a tailor', images(3, seed=99))
        texts += [str(ei.value), repr(ei.value)]
        assert 'HTTP 401' in str(ei.value) and '***' in str(ei.value)
        for e in server.log: assert SENTINEL.encode() not in e['raw'] and SENTINEL not in e['path']   # only in its header
    snap = tmp_path/'snap.jsonl'; t.store.export_jsonl(snap)
    texts += [caplog.text, snap.read_text()]
    store_bytes = b''.join(p.read_bytes() for p in (tmp_path/'s').rglob('*') if p.is_file())
    assert SENTINEL.encode() not in store_bytes
    for x in texts: assert SENTINEL not in x
    assert len(t.store) == 8
