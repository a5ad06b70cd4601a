"""GeminiTeacher against the local Gemini-protocol server (`fake_gemini`) on the faults of a real service: answers the
model refuses (safety blocks and kin), the server's retry hints (RetryInfo, Retry-After), what `latency_s` measures,
and captions that are not descriptions."""
import json
from email.utils import parsedate_to_datetime

import pytest
from helpers import random_images

from paper_distill.fake_gemini import FakeGemini, good_answer
from paper_distill.gemini import GeminiTeacher
from paper_distill.prompts import rank_request, pair_request, caption_request

SENTINEL = 'sentinel-KEY-5b1d-faults'
MODEL = 'gemini-test'


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv('GEMINI_API_KEY', SENTINEL)
    monkeypatch.delenv('GOOGLE_API_KEY', raising=False)
    monkeypatch.delenv('PAPER_DISTILL_GEMINI_MODEL', raising=False)


@pytest.fixture
def server():
    with FakeGemini(expected_key=SENTINEL) as s: yield s


images = random_images


def teacher(store, server, **kw):
    "A teacher whose own backoff is tiny, so that any long wait seen comes from the server's hint."
    return GeminiTeacher(store, model=MODEL, base_url=server.url, **{'backoff_s': 0.005, 'max_backoff_s': 0.01, **kw})


def tries(server, persona):
    "The log entries of generateContent calls whose prompt names `persona`, in arrival order."
    return [e for e in server.of_kind('generate') if persona in e['body']['contents'][0]['parts'][0]['text']]


# ---------------------------------------------------------------- refused answers: reason kept, asked once

@pytest.mark.parametrize('fault', ['finish:SAFETY', 'finish:RECITATION', 'finish:PROHIBITED_CONTENT',
                                   'block:SAFETY', 'block:PROHIBITED_CONTENT', 'block:OTHER'])
def test_a_refused_answer_fails_with_its_reason_after_one_call(tmp_path, server, key_env, fault):
    t = teacher(tmp_path/'s', server, max_invalid=2)
    bad = rank_request(f'a customer the service refuses [[{fault}]]', images(4))
    good = rank_request('a customer the service answers', images(4))
    res = t.label([bad, good])
    reason = fault.split(':')[1]
    assert not res[0].ok and res[1].ok
    assert reason in res[0].error and 'NO_CANDIDATES' not in res[0].error, res[0].error
    assert ('promptFeedback.blockReason' if fault.startswith('block') else 'finishReason') in res[0].error
    assert len(tries(server, 'refuses')) == 1                    # not asked again: one call, one bill
    billed = tries(server, 'refuses')[0]['usage']
    assert t.stats['calls'] == 2 and t.stats['failures'] == 1 and t.stats['rejected'] == 0
    assert t.stats['input_tokens'] == billed['promptTokenCount'] + tries(server, 'answers')[0]['usage']['promptTokenCount']
    assert len(t.store) == 1 and t.store_request(bad)[0].key not in t.store


def test_an_answer_cut_by_the_token_limit_is_still_asked_again(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server, max_invalid=2)
    res, = t.label([pair_request('a customer with a long answer [[finish:MAX_TOKENS]]', images(2))])
    assert not res.ok and 'answers rejected' in res.error and len(tries(server, 'long answer')) == 3


# ---------------------------------------------------------------- the server's retry hint

def test_retry_info_delay_is_waited(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    got = t.rank('a customer over quota [[retry-delay:0.3s]]', images(3))
    first, ok = tries(server, 'over quota')
    assert (first['status'], ok['status']) == (429, 200) and sorted(got) == [0, 1, 2]
    assert ok['t_start'] - first['t_end'] >= 0.3               # waited what the server asked, not the 5 ms backoff
    assert t.stats['retries'] == 1


def test_retry_after_seconds_is_waited(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    t.pair('a customer of a busy model [[retry-after:1]]', images(2))
    first, ok = tries(server, 'busy model')
    assert (first['status'], ok['status']) == (503, 200)
    assert ok['t_start'] - first['t_end'] >= 1.0


def test_retry_after_http_date_is_waited(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server)
    t.pair('a customer of a model busy until a date [[retry-after-date:2]]', images(2))
    first, ok = tries(server, 'busy until')
    assert (first['status'], ok['status']) == (503, 200)
    assert ok['t_start'] >= parsedate_to_datetime(first['retry_after']).timestamp()   # not before the date it named


def test_a_hint_beyond_the_cap_fails_the_request_and_names_the_setting(tmp_path, server, key_env):
    t = teacher(tmp_path/'s', server, max_retry_delay_s=2)
    far = rank_request('a customer over the daily quota [[retry-delay:3600s]]', images(3))
    near = rank_request('a customer within quota', images(3))
    res = t.label([far, near])
    assert not res[0].ok and res[1].ok
    assert 'asks to retry after 3600 s' in res[0].error and 'max_retry_delay_s=2' in res[0].error, res[0].error
    assert len(tries(server, 'daily quota')) == 1 and t.stats['retries'] == 0
    assert SENTINEL not in res[0].error


def test_a_hint_counts_against_max_retries(tmp_path, key_env):
    with FakeGemini(expected_key=SENTINEL, fault='retry-delay:0.05s') as server:   # every try: 429 asking for 50 ms
        t = teacher(tmp_path/'s', server, max_retries=2)
        res, = t.label([pair_request('a customer forever over quota', images(2))])
        assert not res.ok and 'gave up after 3 tries; last HTTP 429' in res.error
        assert len(tries(server, 'forever')) == 3


# ---------------------------------------------------------------- latency_s: the answering HTTP call only

def test_latency_is_the_answering_call_not_the_waits_before_it(tmp_path, key_env):
    with FakeGemini(expected_key=SENTINEL, latency_s=0.05) as server:
        t = teacher(tmp_path/'s', server, max_rps=50)
        req = rank_request('a customer whose answer came late [[retry-delay:0.5s]]', images(5, px=600))
        t.rank(req.persona, req.images)
        first, ok = tries(server, 'came late')
        lat = t.store.get(t.store_request(req)[0].key)['latency_s']
        assert lat >= ok['t_end'] - ok['t_start'] >= 0.05          # the answering call, server time included ...
        assert lat < ok['t_start'] - first['t_end']                # ... not the wait the 429 asked for before it


# ---------------------------------------------------------------- captions that are not descriptions

@pytest.mark.parametrize('structured', [False, True])
def test_a_refusal_caption_is_asked_again_and_never_stored(tmp_path, key_env, structured):
    with FakeGemini(expected_key=SENTINEL, fault='refusal') as server:
        t = teacher(tmp_path/'s', server, structured=structured, max_invalid=2)
        res, = t.label([caption_request(images(1)[0])])
        assert not res.ok and 'is a refusal' in res.error and len(server.answered()) == 3
        assert t.stats['rejected'] == 3 and len(t.store) == 0


def test_a_caption_refused_once_is_stored_from_the_next_answer(tmp_path, key_env):
    with FakeGemini(expected_key=SENTINEL, fault='refusal', fault_times=1) as server:
        t = teacher(tmp_path/'s', server, structured=False)
        cap = t.caption(images(1)[0])
        assert cap == good_answer(server.answered()[-1]['body']) and len(server.answered()) == 2


@pytest.mark.parametrize('fault', ['labelled', 'doubled'])
@pytest.mark.parametrize('structured', [False, True])
def test_a_labelled_or_doubled_caption_is_stored_once_without_its_label(tmp_path, key_env, fault, structured):
    with FakeGemini(expected_key=SENTINEL, fault=fault) as server:
        t = teacher(tmp_path/'s', server, structured=structured)
        img = images(1, seed=3)[0]
        cap = t.caption(img)
        body = server.answered()[-1]['body']
        good = json.loads(good_answer(body))['caption'] if structured else good_answer(body)
        assert cap == (good + '.' if fault == 'doubled' else good)        # the fake writes "Caption: X. Caption: X."
        assert len(server.answered()) == 1 and not cap.startswith('Caption')
        rec = t.store.get(t.store_request(caption_request(img))[0].key)
        assert rec['parsed'] == cap and 'Caption: ' in rec['raw_text']   # the raw answer is kept as it came
