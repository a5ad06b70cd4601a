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

Batch API (the protocol google-genai 3.x speaks, read from its files.py, batches.py and _api_client.py):
- `POST /upload/{v}/files` with `X-Goog-Upload-Protocol: resumable`, `X-Goog-Upload-Command: start` and
  `X-Goog-Upload-Header-Content-Length/-Type` headers and a JSON body `{"file": {...}}` opens an upload session and
  answers with an `X-Goog-Upload-URL` header (the session id is the credential of the next step, as with Google);
- `POST <that url>` with `X-Goog-Upload-Command: upload[, finalize]` and `X-Goog-Upload-Offset` sends the bytes;
  on finalize it answers `X-Goog-Upload-Status: final` and `{"file": {"name": "files/<id>", ...}}`;
- `POST /{v}/models/{model}:batchGenerateContent` with `{"batch": {"inputConfig": {"fileName": "files/<id>"},
  "displayName": ...}}` starts a job over that JSONL file (`{"key": ..., "request": <generateContent body>}` per line)
  and answers the operation `{"name": "batches/<id>", "metadata": {..., "state": "BATCH_STATE_PENDING"}}`;
- `GET /{v}/batches/<id>` answers the same operation: polls before the `batch_polls`-th find it RUNNING, that poll
  and later ones find it SUCCEEDED with `metadata.output.responsesFile = "files/batch-<id>"` (`batch_polls` 0 or 1:
  the first poll finds it done);
- `GET /{v}/files/<id>:download?alt=media` answers a file's bytes: the results JSONL, one
  `{"key": ..., "response": <GenerateContentResponse>}` per input line, answered by the same deterministic logic
  (and the same prompt markers) as generateContent, or `{"key": ..., "error": {...}}` for a line whose prompt holds
  `[[batch-error]]` or is not a valid request. Batch lines see no 429/503 and no latency.
Every call is logged with its `kind` (`generate`, `upload-start`, `upload`, `batch-create`, `batch-get`,
`download`), its path and its raw body; `answered()` lists generateContent answers only.

Run `python tests/fake_gemini.py` to serve on a port and print its URL (for benchmarks or manual tries).
"""
from __future__ import annotations
import base64, hashlib, itertools, json, random, re, threading, time
from urllib.parse import parse_qs, urlparse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PATH = re.compile(r'^/(v1|v1beta|v1alpha)/models/([^/:]+):generateContent$')
_UPLOAD_START = re.compile(r'^/upload/(v1|v1beta|v1alpha)/files$')
_BATCH_CREATE = re.compile(r'^/(v1|v1beta|v1alpha)/models/([^/:]+):batchGenerateContent$')
_BATCH_GET = re.compile(r'^/(v1|v1beta|v1alpha)/batches/([^/:]+)$')
_DOWNLOAD = re.compile(r'^/(v1|v1beta|v1alpha)/files/([^/:]+):download$')


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


def content_response(body: dict, model: str, seen: int = 1) -> tuple[dict, dict]:
    """The GenerateContentResponse JSON for a well-formed body (prompt markers honoured; `seen`: earlier sightings of
    the same body, for `[[flaky]]`), and the log fields (answer, finish, usage, order)."""
    text = ''.join(p.get('text', '') for p in body['contents'][0]['parts'])
    kind = next((k for k in ('malformed', 'truncated', 'nonperm', 'empty') if f'[[{k}]]' in text), None)
    if kind is None and '[[flaky]]' in text and seen == 0: kind = 'malformed'
    if kind: answer, finish = bad_answer(kind, body)
    else: answer, finish = good_answer(body), 'STOP'
    order = decide(body)['order']
    usage = dict(promptTokenCount=len(text) // 4 + 258 * len(order), candidatesTokenCount=max(1, len(answer) // 4))
    usage['totalTokenCount'] = usage['promptTokenCount'] + usage['candidatesTokenCount']
    resp = {'candidates': [{'content': {'parts': [{'text': answer}], 'role': 'model'}, 'finishReason': finish, 'index': 0}],
            'usageMetadata': usage, 'modelVersion': model, 'responseId': _sha(json.dumps(body, sort_keys=True))[:12]}
    return resp, dict(answer=answer, finish=finish, usage=usage, order=order)


def batch_results(jsonl: bytes, model: str) -> bytes:
    """The results file of a batch job over `jsonl`: one line per input line, in input order."""
    out = []
    for i, line in enumerate(jsonl.decode('utf-8').splitlines()):
        if not line.strip(): continue
        d = None
        try:
            d = json.loads(line); key, body = d['key'], d['request']
            text = ''.join(p.get('text', '') for p in body['contents'][0]['parts'])
            decide(body)
        except Exception as e:
            key = d.get('key') if isinstance(d, dict) else None
            out.append({'key': str(key) if key is not None else f'line-{i + 1}',
                        'error': {'code': 400, 'message': f'line {i + 1}: invalid request ({type(e).__name__})', 'status': 'INVALID_ARGUMENT'}})
            continue
        if '[[batch-error]]' in text:
            out.append({'key': key, 'error': {'code': 500, 'message': 'Internal error encountered.', 'status': 'INTERNAL'}}); continue
        out.append({'key': key, 'response': content_response(body, model)[0]})
    return ''.join(json.dumps(o) + '\n' for o in out).encode('utf-8')


class FakeGemini(ThreadingHTTPServer):
    """Threaded local generateContent server with fault injection and a request log."""
    daemon_threads = True

    def __init__(self, latency_s=0.0, p429=0.0, p503=0.0, seed=0, expected_key=None, slow_s=2.0, echo_key=False, batch_polls=2):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.batch_polls = batch_polls
        self.uploads: dict[str, dict] = {}   # upload session id -> {file, data}
        self.files: dict[str, dict] = {}     # file id -> {meta, data}
        self.batches: dict[str, dict] = {}   # batch id -> {op, polls, model, src}
        self._ids = itertools.count(1)
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
        "generateContent log entries answered with HTTP 200."
        with self.lock: return [e for e in self.log if e['status'] == 200 and e['kind'] == 'generate']

    def of_kind(self, kind: str) -> list[dict]:
        "Log entries of one kind (generate, upload-start, upload, batch-create, batch-get, download, unknown)."
        with self.lock: return [e for e in self.log if e['kind'] == kind]

    def new_id(self, prefix: str) -> str:
        with self.lock: return f'{prefix}{next(self._ids):04d}' + _sha(f'{prefix}{time.time_ns()}')[:6]

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

    def _send_raw(self, status: int, data: bytes, ctype: str, headers: dict | None = None):
        try:
            self.send_response(status)
            self.send_header('Content-Type', ctype)
            for k, v in (headers or {}).items(): self.send_header(k, v)
            self.send_header('Content-Length', str(len(data)))
            self.end_headers(); self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError): pass

    def _entry(self, kind: str, raw: bytes) -> dict:
        srv: FakeGemini = self.server
        return dict(kind=kind, t_start=time.time(), method=self.command, path=self.path, status=None, body_hash=_sha(raw), raw=raw,
                    has_key='x-goog-api-key' in self.headers,
                    key_ok=(srv.expected_key is None or self.headers.get('x-goog-api-key') == srv.expected_key),
                    upload_headers={k: v for k, v in self.headers.items() if k.lower().startswith('x-goog-upload')})

    def _log(self, entry: dict, status: int):
        entry['status'], entry['t_end'] = status, time.time()
        with self.server.lock: self.server.log.append(entry)

    def _refuse_key(self, entry: dict):
        srv: FakeGemini = self.server
        self._log(entry, 403)
        got = self.headers.get('x-goog-api-key') if srv.echo_key else '...'
        self._error(403, f'API key not valid: {got}', 'PERMISSION_DENIED')

    def _not_found(self, entry: dict, what: str):
        self._log(entry, 404); self._error(404, f'{what} not found: {self.path}', 'NOT_FOUND')

    def do_GET(self):
        n = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(n) if n else b''
        path = self.path.split('?')[0]
        srv: FakeGemini = self.server
        if m := _BATCH_GET.match(path):
            e = self._entry('batch-get', raw)
            if not e['key_ok']: return self._refuse_key(e)
            with srv.lock:
                job = srv.batches.get(m.group(2))
                if job is not None:
                    job['polls'] += 1
                    done = job['polls'] >= srv.batch_polls
                    md = job['op']['metadata']
                    if done and md['state'] != 'BATCH_STATE_SUCCEEDED':
                        rid = f"batch-{m.group(2)}"
                        data = batch_results(srv.files[job['src']]['data'], job['model'])
                        srv.files[rid] = dict(meta={'name': f'files/{rid}', 'mimeType': 'application/jsonl', 'sizeBytes': str(len(data)),
                                                    'source': 'GENERATED', 'downloadUri': f'{srv.url}/v1beta/files/{rid}:download?alt=media'}, data=data)
                        lines = [json.loads(l) for l in data.decode('utf-8').splitlines()]
                        n_all, n_err = len(lines), sum('error' in l for l in lines)
                        md.update(state='BATCH_STATE_SUCCEEDED', output={'responsesFile': f'files/{rid}'}, endTime=_now(),
                                  batchStats={'requestCount': str(n_all), 'successfulRequestCount': str(n_all - n_err), 'failedRequestCount': str(n_err)})
                        job['op']['done'] = True
                    elif not done: md['state'] = 'BATCH_STATE_RUNNING'
                    op = json.loads(json.dumps(job['op']))
            if job is None: return self._not_found(e, 'batch')
            self._log(e, 200); return self._send(200, op)
        if m := _DOWNLOAD.match(path):
            e = self._entry('download', raw)
            if not e['key_ok']: return self._refuse_key(e)
            if parse_qs(urlparse(self.path).query).get('alt') != ['media']:
                self._log(e, 400); return self._error(400, 'download needs alt=media', 'INVALID_ARGUMENT')
            with srv.lock: f = srv.files.get(m.group(2))
            if f is None or f['meta'].get('source') != 'GENERATED': return self._not_found(e, 'generated file')
            self._log(e, 200); return self._send_raw(200, f['data'], 'application/octet-stream')
        self._not_found(self._entry('unknown', raw), 'path')

    def do_POST(self):
        srv: FakeGemini = self.server
        n = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(n)
        path = self.path.split('?')[0]
        if _UPLOAD_START.match(path) and 'upload_id' in self.path: return self._upload_chunk(raw)
        if m := _UPLOAD_START.match(path): return self._upload_start(raw, m.group(1))
        if m := _BATCH_CREATE.match(path): return self._batch_create(raw, m.group(2))
        if not _PATH.match(path): return self._not_found(self._entry('unknown', raw), 'path')
        self._generate(raw)

    def _upload_start(self, raw: bytes, version: str):
        srv: FakeGemini = self.server
        e = self._entry('upload-start', raw)
        if not e['key_ok']: return self._refuse_key(e)
        h = self.headers
        if h.get('X-Goog-Upload-Protocol') != 'resumable' or h.get('X-Goog-Upload-Command') != 'start':
            self._log(e, 400); return self._error(400, 'expected X-Goog-Upload-Protocol: resumable and X-Goog-Upload-Command: start', 'INVALID_ARGUMENT')
        try: meta = json.loads(raw or b'{}').get('file') or {}
        except ValueError: meta = None
        size = h.get('X-Goog-Upload-Header-Content-Length')
        if meta is None or size is None or not size.isdigit():
            self._log(e, 400); return self._error(400, 'bad upload start: need a JSON {"file": ...} body and X-Goog-Upload-Header-Content-Length', 'INVALID_ARGUMENT')
        uid = srv.new_id('up')
        with srv.lock: srv.uploads[uid] = dict(meta=meta, size=int(size), mime=h.get('X-Goog-Upload-Header-Content-Type'), data=b'')
        self._log(e, 200)
        self._send_raw(200, b'{}', 'application/json', {'X-Goog-Upload-URL': f'{srv.url}/upload/{version}/files?upload_id={uid}&upload_protocol=resumable',
                                                          'X-Goog-Upload-Status': 'active'})

    def _upload_chunk(self, raw: bytes):
        srv: FakeGemini = self.server
        e = self._entry('upload', raw)
        uid = (parse_qs(urlparse(self.path).query).get('upload_id') or [''])[0]
        cmd = self.headers.get('X-Goog-Upload-Command', '')
        with srv.lock: up = srv.uploads.get(uid)
        if up is None: return self._not_found(e, 'upload session')
        off = self.headers.get('X-Goog-Upload-Offset')
        if off != str(len(up['data'])):
            self._log(e, 400); return self._error(400, f'upload offset {off} is not {len(up["data"])}', 'INVALID_ARGUMENT')
        up['data'] += raw
        if 'finalize' not in cmd:
            self._log(e, 200); return self._send_raw(200, b'', 'text/plain', {'X-Goog-Upload-Status': 'active'})
        if len(up['data']) != up['size']:
            self._log(e, 400); return self._error(400, f'uploaded {len(up["data"])} bytes, announced {up["size"]}', 'INVALID_ARGUMENT')
        fid = srv.new_id('f')
        meta = {**{k: v for k, v in up['meta'].items() if k in ('displayName',)}, 'name': f'files/{fid}', 'mimeType': up['mime'],
                'sizeBytes': str(up['size']), 'createTime': _now(), 'state': 'ACTIVE', 'source': 'UPLOADED',
                'uri': f'{srv.url}/v1beta/files/{fid}', 'sha256Hash': base64.b64encode(_sha(up['data']).encode()).decode()}
        with srv.lock: srv.files[fid] = dict(meta=meta, data=up['data']); del srv.uploads[uid]
        self._log(e, 200)
        self._send_raw(200, json.dumps({'file': meta}).encode(), 'application/json', {'X-Goog-Upload-Status': 'final'})

    def _batch_create(self, raw: bytes, model: str):
        srv: FakeGemini = self.server
        e = self._entry('batch-create', raw)
        if not e['key_ok']: return self._refuse_key(e)
        try: batch = json.loads(raw)['batch']; src = batch['inputConfig']['fileName']
        except (ValueError, KeyError, TypeError):
            self._log(e, 400); return self._error(400, 'expected {"batch": {"inputConfig": {"fileName": "files/..."}}}', 'INVALID_ARGUMENT')
        fid = src.split('files/')[-1]
        with srv.lock: ok = fid in srv.files
        if not ok: return self._not_found(e, f'input file {src}')
        bid = srv.new_id('b')
        op = {'name': f'batches/{bid}', 'metadata': {'@type': 'type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch',
              'model': f'models/{model}', 'displayName': batch.get('displayName', ''), 'createTime': _now(), 'updateTime': _now(),
              'state': 'BATCH_STATE_PENDING', 'name': f'batches/{bid}', 'inputConfig': {'fileName': src}}}
        with srv.lock: srv.batches[bid] = dict(op=op, polls=0, model=model, src=fid)
        e['model'] = model
        self._log(e, 200); self._send(200, op)

    def _generate(self, raw: bytes):
        srv: FakeGemini = self.server
        m = _PATH.match(self.path.split('?')[0])
        entry = self._entry('generate', raw)
        entry['model'] = m.group(2)
        try: body = json.loads(raw)
        except Exception: body = None
        entry['body'] = body
        if body is None: status, resp = 404, None
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
                resp, info = content_response(body, entry['model'], seen)
                resp['responseId'] = entry['body_hash'][:12]
                status = 200
                entry.update(info)
        entry['status'], entry['t_end'] = status, time.time()
        with srv.lock: srv.log.append(entry)  # logged before the reply leaves, so a client never outruns the log
        if status == 200: self._send(200, resp)
        elif status == 404: self._error(404, f'not found: {self.path}', 'NOT_FOUND')
        elif status == 403:  # echo_key imitates a careless service that repeats the key it got (tests redaction)
            got = self.headers.get('x-goog-api-key') if srv.echo_key else '...'
            self._error(403, f'API key not valid: {got}', 'PERMISSION_DENIED')
        elif status == 429: self._error(429, 'Resource exhausted.', 'RESOURCE_EXHAUSTED')
        else: self._error(503, 'The model is overloaded.', 'UNAVAILABLE')


def _now() -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime()) + '.000000Z'


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
