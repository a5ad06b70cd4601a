"""A local stand-in for Gemini's `generateContent` REST endpoint, for offline tests of the real google-genai client.

`FakeGemini` is an `http.server.ThreadingHTTPServer` bound to 127.0.0.1 on a free port. It answers
`POST /{v1,v1beta}/models/{model}:generateContent` with the JSON shape the API returns
(`candidates[0].content.parts[0].text`, `finishReason`, `usageMetadata`, `modelVersion`).

Answers are deterministic: a ranking orders the inline images by sha256(prompt text + sha256(image bytes)), a pair answer
is the first index of that order, a caption is made from the images' hashes. With `responseMimeType ==
application/json` the answer is the JSON object the project's structured prompts ask for.

Fault injection:
- `p429`, `p503`: probabilities of answering 429 / 503 (seeded RNG, so a test run is repeatable);
- `latency_s`: sleep before every answer;
- markers in the prompt text: `[[malformed]]`, `[[truncated]]` (finishReason MAX_TOKENS), `[[nonperm]]`
  (a repeated index), `[[empty]]` → always a bad answer; `[[flaky]]` → a bad answer the first time a given request
  body is seen, then a good one; `[[slow-once]]` → sleeps `slow_s` the first time (for client timeouts).

Every request is logged (`log`: a list of dicts with the body's hash, status, answer, timing); the API key header
is checked against `expected_key` when one is given but never logged.

Run `python tests/fake_gemini.py` to serve on a port and print its URL (for benchmarks or manual tries).
"""
from __future__ import annotations
import base64, hashlib, json, random, re, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PATH = re.compile(r'^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$')


def _sha(s: str | bytes) -> str:
    return hashlib.sha256(s.encode() if isinstance(s, str) else s).hexdigest()


def b64bytes(s: str) -> bytes:
    """Decode standard or URL-safe base64 (the SDK sends URL-safe)."""
    s = s.replace('+', '-').replace('/', '_')
    return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))


def decide(body: dict) -> dict:
    """The deterministic good answer to a generateContent body: the image order, prompt text and image bytes."""
    parts = body['contents'][0]['parts']
    text = ''.join(p.get('text', '') for p in parts)
    imgs = [b64bytes((p.get('inlineData') or p.get('inline_data'))['data']) for p in parts if 'inlineData' in p or 'inline_data' in p]
    order = sorted(range(len(imgs)), key=lambda i: _sha(text + _sha(imgs[i])))
    return dict(order=order, text=text, imgs=imgs)


def good_answer(body: dict) -> str:
    """The answer text the server gives to a well-formed request (structured or not)."""
    d = decide(body)
    structured = (body.get('generationConfig') or {}).get('responseMimeType') == 'application/json'
    order, k = d['order'], len(d['imgs'])
    if k == 1:
        cap = 'a product photo ' + _sha(d['imgs'][0])[:8] if k else 'nothing'
        return json.dumps({'caption': cap}) if structured else cap
    if k == 2:
        return json.dumps({'choice': order[0]}) if structured else str(order[0])
    ranking = [i + 1 for i in order]
    return json.dumps({'ranking': ranking}) if structured else ','.join(map(str, ranking))


def bad_answer(kind: str, body: dict) -> tuple[str, str]:
    """A bad answer of `kind` and its finishReason."""
    good = good_answer(body)
    if kind == 'truncated': return good[:max(1, len(good) // 2)], 'MAX_TOKENS'
    if kind == 'empty': return '', 'STOP'
    if kind == 'nonperm':
        k = len(decide(body)['imgs'])
        structured = (body.get('generationConfig') or {}).get('responseMimeType') == 'application/json'
        if k == 2: return ('{"choice": 2}' if structured else '2'), 'STOP'
        rk = [1] * k
        return (json.dumps({'ranking': rk}) if structured else ','.join(map(str, rk))), 'STOP'
    return 'I think the second picture suits them best, then the others.', 'STOP'


class FakeGemini(ThreadingHTTPServer):
    """Threaded local generateContent server with fault injection and a request log."""
    daemon_threads = True

    def __init__(self, latency_s=0.0, p429=0.0, p503=0.0, seed=0, expected_key=None, slow_s=2.0, echo_key=False):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.latency_s, self.p429, self.p503, self.slow_s = latency_s, p429, p503, slow_s
        self.expected_key, self.echo_key = expected_key, echo_key
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.log: list[dict] = []
        self.seen: dict[str, int] = {}
        self.thread = None

    @property
    def url(self) -> str: return f'http://127.0.0.1:{self.server_address[1]}'

    def start(self):
        self.thread = threading.Thread(target=self.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)
        self.thread.start(); return self

    def stop(self):
        self.shutdown(); self.server_close()

    def __enter__(self): return self.start()
    def __exit__(self, *a): self.stop()

    # summaries used by tests
    def answered(self) -> list[dict]:
        "Log entries answered with HTTP 200."
        with self.lock: return [e for e in self.log if e['status'] == 200]

    def count(self, status=None) -> int:
        with self.lock: return sum(1 for e in self.log if status is None or e['status'] == status)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *a): pass  # quiet

    def _send(self, status: int, obj: dict):
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header('Content-Type', 'application/json; charset=UTF-8')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers(); self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError): pass

    def _error(self, status: int, msg: str, st: str):
        self._send(status, {'error': {'code': status, 'message': msg, 'status': st}})

    def do_POST(self):
        srv: FakeGemini = self.server
        t0 = time.time()
        n = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(n)
        m = _PATH.match(self.path.split('?')[0])
        entry = dict(t_start=t0, path=self.path, status=None, body_hash=_sha(raw), model=m.group(2) if m else None,
                     key_ok=(srv.expected_key is None or self.headers.get('x-goog-api-key') == srv.expected_key))
        try: body = json.loads(raw)
        except Exception: body = None
        entry['body'] = body
        if not m or body is None: status, resp = 404, None
        elif not entry['key_ok']: status, resp = 403, None
        else: status, resp = None, None
        if status is None:
            with srv.lock:
                seen = srv.seen.get(entry['body_hash'], 0); srv.seen[entry['body_hash']] = seen + 1
                r = srv.rng.random()
            text = ''.join(p.get('text', '') for p in body['contents'][0]['parts'])
            if '[[slow-once]]' in text and seen == 0: time.sleep(srv.slow_s)
            if srv.latency_s: time.sleep(srv.latency_s)
            if r < srv.p429: status = 429
            elif r < srv.p429 + srv.p503: status = 503
            else:
                kind = next((k for k in ('malformed', 'truncated', 'nonperm', 'empty') if f'[[{k}]]' in text), None)
                if kind is None and '[[flaky]]' in text and seen == 0: kind = 'malformed'
                if kind: answer, finish = bad_answer(kind, body)
                else: answer, finish = good_answer(body), 'STOP'
                n_img = len(decide(body)['imgs'])
                usage = dict(promptTokenCount=len(text) // 4 + 258 * n_img, candidatesTokenCount=max(1, len(answer) // 4))
                usage['totalTokenCount'] = usage['promptTokenCount'] + usage['candidatesTokenCount']
                resp = {'candidates': [{'content': {'parts': [{'text': answer}], 'role': 'model'},
                                        'finishReason': finish, 'index': 0}],
                        'usageMetadata': usage, 'modelVersion': entry['model'], 'responseId': entry['body_hash'][:12]}
                status = 200
                entry.update(answer=answer, finish=finish, usage=usage, order=decide(body)['order'])
        entry['status'], entry['t_end'] = status, time.time()
        with srv.lock: srv.log.append(entry)  # logged before the reply leaves, so a client never outruns the log
        if status == 200: self._send(200, resp)
        elif status == 404: self._error(404, f'not found: {self.path}', 'NOT_FOUND')
        elif status == 403:  # echo_key imitates a careless service that repeats the key it got (tests redaction)
            got = self.headers.get('x-goog-api-key') if srv.echo_key else '...'
            self._error(403, f'API key not valid: {got}', 'PERMISSION_DENIED')
        elif status == 429: self._error(429, 'Resource exhausted.', 'RESOURCE_EXHAUSTED')
        else: self._error(503, 'The model is overloaded.', 'UNAVAILABLE')


if __name__ == '__main__':
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--latency', type=float, default=0.0)
    ap.add_argument('--p429', type=float, default=0.0)
    ap.add_argument('--p503', type=float, default=0.0)
    a = ap.parse_args()
    s = FakeGemini(latency_s=a.latency, p429=a.p429, p503=a.p503)
    print(s.url, flush=True)
    try: s.serve_forever()
    except KeyboardInterrupt: s.stop()
