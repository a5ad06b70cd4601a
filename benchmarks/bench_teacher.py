"""Teacher throughput: the real GeminiTeacher against the local fake generateContent server with injected latency.

Labels `--requests` ranking requests of k images (default 240 × k=5 drawn from 200 photos, 200 ms latency, 16 in
flight) with `GeminiTeacher.label` into a fresh store and compares the throughput with the ideal `concurrency / latency`
calls per second (ideal wall time = `requests × latency / concurrency`; the target is at least 90% of the ideal).
Every run is a fresh Python process (nothing cached from an earlier run: no file hashes, no encoded images), timed
around `label()` alone, with the process CPU time of all its threads beside the wall time. The server
(`paper_distill.fake_gemini.FakeGemini`) runs in its own process, so its CPU (JSON parsing, base64, hashing the
images) is neither counted in nor competing for the client's interpreter; its CPU seconds are shown separately.
Three kinds of images, run interleaved (small, files, catalog, small, ...; median of the repeats):
  - small:   64 px uint8 arrays held in memory;
  - files:   product-photo-like JPEG files of 300-1,200 px made by the benchmark, given as paths (hashed by `label`,
             then decoded, downscaled to 384 px and re-encoded as JPEG to be sent);
  - catalog: the same files as a `Catalog.from_folder`, requests of `ImageRef(hash, partial(catalog.image, j))` as
             `tasks.py` builds them (content hashes computed once by `Catalog.hashes()` in the run's process, timed
             separately, not in its wall time).
`--before REF` (default: the commit before each image was hashed and encoded once per content) also runs every kind
with the package as it was at REF (`git archive`), interleaved with the working tree's ("after"), on the same photos
and server.
A per-image breakdown (one thread, median over the images) shows where the client's CPU goes: decoding, hashing,
`image_png` (decode + downscale + PNG) and building the request body + the SDK's parse of it.
Optional fault injection (--p429/--p503) shows the cost of retries.
Run: `python benchmarks/bench_teacher.py [--requests 240 --latency 0.2 --concurrency 16 --repeats 3 --before REF] [--quick] [--md PATH]`

`--simulated` measures the labelling runner's own overhead instead: it labels 1, 100, 1,000 and 4,000 ranking requests
with the SimulatedTeacher (a utility of hashes, no pixels: `ImageRef(hash)` images) into a fresh store and prints wall
and process CPU milliseconds per record at each batch size. A runner whose bookkeeping is O(1) per completion costs
the same per record at every size. Run: `python benchmarks/bench_teacher.py --simulated [--concurrency 1]`.
"""
import argparse, io, json, os, shutil, subprocess, sys, tempfile, time
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from paper_distill.core import hash_image, _as_pil
from paper_distill.data import Catalog
from paper_distill.gemini import GeminiTeacher, image_png
from paper_distill.prompts import ImageRef, rank_request
from paper_distill.teacher import SimulatedTeacher
from report import ROOT, Table, Timer, emit, median, product_jpegs

MODEL = 'gemini-2.5-flash'   # a model of the package's price table (core.load_prices), so `stats['cost_usd']` is filled
BEFORE = 'cc6752b'          # the package before each image was hashed and encoded once per content (and hashed in the workers)


def _hash_utility(persona, hashes):
    "A utility that needs no pixels: a fixed score per (persona, image hash)."
    return np.array([(int(h[-6:], 16) * (len(persona) + 7)) % 1000 / 1000 for h in hashes])


def simulated(sizes=(1, 100, 1000, 4000), k:int=5, concurrency:int=1, min_records:int=400, md=None):
    "Per-record wall and CPU ms of `Teacher.label` with the SimulatedTeacher, for each batch size."
    t = Table(['records', 'label() calls', 'wall ms/rec', 'CPU ms/rec'])
    with tempfile.TemporaryDirectory() as d:   # warm-up: imports, the store's first open, numpy's generators
        SimulatedTeacher(_hash_utility, Path(d)/'store', name='bench').label([rank_request('w', [ImageRef(f'{j:064x}') for j in range(k)])])
    for n in sizes:
        reps = max(1, -(-min_records // n))
        batches = [[rank_request(f'persona {r}-{i}', [ImageRef(f'{r:04x}{i:08x}{j:052x}') for j in range(k)]) for i in range(n)]
                   for r in range(reps)]
        with tempfile.TemporaryDirectory() as d:
            st = SimulatedTeacher(_hash_utility, Path(d)/'store', name='bench', concurrency=concurrency)
            with Timer() as tm: res = [r for b in batches for r in st.label(b)]
            assert all(r.ok for r in res) and st.stats['calls'] == n * reps
        t.add(n, reps, f"{tm.wall/(n*reps)*1000:.2f}", f"{tm.cpu/(n*reps)*1000:.2f}")
    emit('Labelling runner overhead, SimulatedTeacher (bench_teacher.py --simulated)', [
        f"`SimulatedTeacher.label` on ranking requests of k={k} `ImageRef` images (hashes only), concurrency {concurrency}, "
        f"a fresh store per size; sizes below {min_records} repeat label() until {min_records} records. CPU = process time "
        "of all threads.", t], md)


SERVER = r"""
import json, os, sys
from paper_distill.fake_gemini import FakeGemini
s = FakeGemini(latency_s=float(sys.argv[1]), p429=float(sys.argv[2]), p503=float(sys.argv[3])).start()
print(s.url, flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == 'stats':      # counts since the last stats, then forget the log (it keeps every request body)
        with s.lock:
            st = dict(calls=sum(e['kind'] == 'generate' for e in s.log), s429=sum(e['status'] == 429 for e in s.log),
                      s503=sum(e['status'] == 503 for e in s.log), max_in_flight=s.max_in_flight,
                      bytes=sum(len(e['raw']) for e in s.log if e['kind'] == 'generate'))
            s.log.clear(); s.seen.clear(); s.max_in_flight = 0
        t = os.times(); st['cpu'] = t.user + t.system
        print(json.dumps(st), flush=True)
    elif cmd == 'quit': break
s.stop()
"""

class Server:
    "The fake Gemini server in its own process."
    def __init__(self, latency, p429, p503):
        self.p = subprocess.Popen([sys.executable, '-c', SERVER, str(latency), str(p429), str(p503)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.p.stdout.readline().strip()
        if not self.url.startswith('http'): raise SystemExit(f"the fake server did not start: {self.url!r}")
        self.cpu0 = self.stats()['cpu']
    def stats(self)->dict:
        self.p.stdin.write('stats\n'); self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())
    def close(self):
        try: self.p.stdin.write('quit\n'); self.p.stdin.flush(); self.p.wait(10)
        except Exception: self.p.kill()


def breakdown(files, small, k, md_rows:Table, teacher):
    "Per-image client CPU costs, one thread, median over the images (process CPU time: robust to the machine's load)."
    from paper_distill.gemini import IMAGE_CACHE      # the working tree's (a 'before' run imports only what the old package had)
    from paper_distill.prompts import image_hash
    def med_ms(f, xs):
        ts = []
        for x in xs:
            c = time.process_time(); f(x); ts.append(time.process_time() - c)
        return median(ts) * 1e3
    for name, imgs in (('small 64 px array', small), ('JPEG file 300-1200 px', files)):
        dec = med_ms(_as_pil, imgs)
        hsh = med_ms(hash_image, imgs)
        png = med_ms(image_png, imgs)
        def small_rgb(i):   # image_png's steps before the PNG encoder: decode, RGB, downscale to 384 px (LANCZOS)
            im = _as_pil(i); im = im.convert('RGB') if im.mode != 'RGB' else im.copy()
            if max(im.size) > 384: im.thumbnail((384, 384), Image.Resampling.LANCZOS)
            return im
        down = med_ms(small_rgb, imgs)
        shrunk = [small_rgb(i) for i in imgs]
        enc = med_ms(lambda im: im.save(io.BytesIO(), format='PNG'), shrunk)
        kb = np.mean([len(image_png(i)) for i in imgs]) / 1e3
        reqs = [rank_request(f'breakdown {j}', [imgs[(j * k + i) % len(imgs)] for i in range(k)]) for j in range(max(3, len(imgs) // k))]
        for i in imgs: image_hash(i)                            # file hashes known (as in `label`): the body's cost is the encoding
        def body_first(r):                                      # every image encoded, as the first request that shows it
            IMAGE_CACHE.clear(); teacher.request_body(r)
        body = med_ms(body_first, reqs)
        bodies = [teacher.request_body(r) for r in reqs]
        cached = med_ms(lambda r: teacher.request_body(r), reqs)
        sdk = med_ms(lambda b: teacher.sdk_request(b), bodies)
        mb = np.mean([len(json.dumps(b)) for b in bodies]) / 1e6
        md_rows.add(name, f"{dec:.2f}", f"{hsh:.2f}", f"{png:.2f}", f"{down:.2f}", f"{enc:.2f}", f"{kb:.0f}", f"{body:.1f}", f"{cached:.1f}", f"{sdk:.1f}",
                    f"{mb:.2f}", f"{k * hsh + body + sdk:.0f}", f"{cached + sdk:.0f}")


def worker(a):
    "One timed labelling run in this (fresh) process; prints its figures as one JSON line."
    import paper_distill
    kd, n, k = a.kind, a.requests, a.k
    photos = sorted(Path(a.photos).glob('*.jpg'))
    hash_s = 0.0
    if kd == 'small':
        rng = np.random.default_rng(0)
        pool = [rng.integers(0, 256, (a.px, a.px, 3), dtype=np.uint8) for _ in range(max(len(photos), k))]
    elif kd == 'files': pool = [str(p) for p in photos]
    else:
        with Timer() as th:
            cat = Catalog.from_folder(Path(a.photos)); hashes = cat.hashes()
        pool, hash_s = [ImageRef(hashes[j], partial(cat.image, j)) for j in range(len(cat))], th.wall
    picks = [np.random.default_rng([1, i]).choice(len(pool), k, replace=False) for i in range(n)]
    reqs = [rank_request(f'persona {kd} {a.tag}-{i}: a shopper who likes sturdy, simple things', [pool[j] for j in picks[i]]) for i in range(n)]
    t = GeminiTeacher(Path(a.store), model=MODEL, base_url=a.url, concurrency=a.concurrency, backoff_s=0.05, max_backoff_s=0.5)
    with Timer() as tm: res = t.label(reqs)
    st = t.stats
    print(json.dumps(dict(wall=tm.wall, cpu=tm.cpu, ok=sum(r.ok for r in res), hash_s=hash_s, usd=st['cost_usd'], inp=st['input_tokens'],
                          out=st['output_tokens'], package=str(Path(paper_distill.__file__).parent))), flush=True)


def code_tree(ref:str, into:Path)->Path:
    "The package as it was at git `ref`, extracted into `into` (a folder to put first on PYTHONPATH)."
    into.mkdir(parents=True, exist_ok=True)
    arc = subprocess.run(['git', 'archive', '--format=tar', ref, 'paper_distill'], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(['tar', '-x', '-C', str(into)], input=arc, check=True)
    return into


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--requests', type=int, default=240)
    ap.add_argument('--latency', type=float, default=0.2, help='injected server latency per request, seconds')
    ap.add_argument('--concurrency', type=int, default=None, help='requests in flight (default 16; 1 with --simulated)')
    ap.add_argument('--k', type=int, default=5, help='images per ranking request')
    ap.add_argument('--px', type=int, default=64, help='side of the small images, pixels')
    ap.add_argument('--files', type=int, default=200, help='distinct real-size JPEG files the requests draw from')
    ap.add_argument('--repeats', type=int, default=3, help='interleaved runs of each kind (median reported)')
    ap.add_argument('--kinds', type=str, default='small,files,catalog', help='comma-separated among small, files, catalog')
    ap.add_argument('--before', type=str, default=BEFORE, help="git ref of the code to compare with ('' : only the working tree)")
    ap.add_argument('--p429', type=float, default=0.0)
    ap.add_argument('--p503', type=float, default=0.0)
    ap.add_argument('--quick', action='store_true', help='small sizes, 1 repeat, no before (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    ap.add_argument('--simulated', action='store_true', help="measure the runner's overhead with the SimulatedTeacher instead")
    ap.add_argument('--sizes', type=str, default='1,100,1000,4000', help='batch sizes of --simulated, comma-separated')
    for x in ('--worker', '--kind', '--url', '--photos', '--store', '--tag'): ap.add_argument(x, help=argparse.SUPPRESS, **({'action': 'store_true'} if x == '--worker' else {}))
    a = ap.parse_args()
    a.concurrency = a.concurrency or (1 if a.simulated else 16)
    if a.worker: return worker(a)
    if a.simulated:
        sizes = (1, 100, 400) if a.quick else tuple(int(x) for x in a.sizes.split(','))
        return simulated(sizes, a.k, a.concurrency, md=a.md)
    if a.quick: a.requests, a.repeats, a.files, a.before = 48, 1, 40, ''
    kinds = [x.strip() for x in a.kinds.split(',') if x.strip()]
    os.environ['GEMINI_API_KEY'] = 'local-fake-server-key'  # the fake server runs locally; no real key is used
    ideal = a.requests * a.latency / a.concurrency
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        paths = product_jpegs(d/'photos', a.files, seed=2)
        codes = {'after': ROOT}
        if a.before: codes = {'before': code_tree(a.before, d/'before'), 'after': ROOT}
        server = Server(a.latency, a.p429, a.p503)
        runs = {(c, kd): [] for c in codes for kd in kinds}
        try:
            for rep in range(a.repeats):
                for kd in kinds:
                    for c, tree in codes.items():
                        # a fresh process each run (no cache carried over), new personas (no store or server reuse)
                        cmd = [sys.executable, __file__, '--worker', '--kind', kd, '--url', server.url, '--photos', str(d/'photos'),
                               '--store', str(d/f'store-{c}-{kd}-{rep}'), '--tag', f'{c}{rep}', '--requests', str(a.requests), '--k', str(a.k),
                               '--px', str(a.px), '--concurrency', str(a.concurrency)]
                        env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tree), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep)}
                        s0 = server.stats()
                        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                        if out.returncode: raise SystemExit(f"the {c} run of {kd} failed:\n{out.stderr[-3000:]}")
                        r = json.loads(out.stdout.strip().splitlines()[-1])
                        assert Path(r['package']).resolve() == (Path(tree)/'paper_distill').resolve(), (r['package'], tree)
                        s1 = server.stats()
                        r.update(calls=s1['calls'], s429=s1['s429'], s503=s1['s503'], srv_cpu=s1['cpu'] - s0['cpu'],
                                 mb=s1['bytes'] / max(1, s1['calls']) / 1e6, in_flight=s1['max_in_flight'])
                        runs[(c, kd)].append(r)
                        print(f"  {c:6s} {kd:8s} run {rep + 1}/{a.repeats}: wall {r['wall']:6.2f} s ({ideal / r['wall']:4.0%} of ideal), "
                              f"CPU {r['cpu']:6.2f} s, {r['ok']}/{a.requests} ok", file=sys.stderr, flush=True)
        finally: server.close()
        bd = Table(['image', 'decode ms', 'hash_image ms', 'image_png ms', '= decode + downscale ms', '+ PNG encode ms', 'PNG KB', f'request_body ms (k={a.k}, first)',
                    'request_body ms (cached)', 'sdk_request ms', 'body MB', 'client CPU ms/request, first (est.)', 'cached (est.)'], align='lrrrrrrrrrrrr')
        rng = np.random.default_rng(0)
        small = [rng.integers(0, 256, (a.px, a.px, 3), dtype=np.uint8) for _ in range(20)]
        t = GeminiTeacher(d/'store-breakdown', model=MODEL, base_url=server.url)
        breakdown([str(p) for p in paths[:20]], small, a.k, bd, t)
        shutil.rmtree(d/'before', ignore_errors=True)
    tab = Table(['code', 'images', 'requests', 'ideal s', 'wall s', 'throughput vs ideal', 'calls/s', 'ideal calls/s', 'client CPU s',
                 'CPU ms/request', 'server CPU s', 'MB/request', 'max in flight', 'ok', 'HTTP calls (429/503)'], align='llrrrrrrrrrrrrr')
    names = dict(small=f'small {a.px} px arrays', files='JPEG files 300-1200 px (paths)', catalog='JPEG files via Catalog + ImageRef')
    for (c, kd), rs in runs.items():
        m = lambda f: median([r[f] for r in rs])
        wall = m('wall')
        tab.add(c if a.before else 'working tree', names[kd], a.requests, f"{ideal:.2f}", f"{wall:.2f}", f"{ideal / wall:.0%}", f"{a.requests / wall:.1f}",
                f"{a.concurrency / a.latency:.1f}", f"{m('cpu'):.2f}", f"{m('cpu') / a.requests * 1e3:.1f}", f"{m('srv_cpu'):.2f}",
                f"{m('mb'):.2f}", f"{max(r['in_flight'] for r in rs)}", f"{min(r['ok'] for r in rs)}/{a.requests}",
                f"{m('calls'):.0f} ({m('s429'):.0f}/{m('s503'):.0f})")
    r0 = runs[('after', kinds[0])][0]
    usd = f"${r0['usd'] / a.requests:.6f}" if r0['usd'] is not None else 'n/a'
    hs = [r['hash_s'] for (c, kd), rs in runs.items() if kd == 'catalog' and c == 'after' for r in rs]
    cat_note = (f"The catalog kind's content hashes were computed by `Catalog.hashes()` before `label()` in each run's process: "
                f"{median(hs):.2f} s wall for {a.files} files ({median(hs) / a.files * 1e3:.0f} ms per image), not in its wall time. ") if hs else ''
    before = (f"'before' = the package at `{a.before}` (`git archive`), each image hashed on the calling thread before the first request and "
              "encoded again in every request that shows it; 'after' = the working tree. ") if a.before else ''
    emit('Teacher labelling throughput: GeminiTeacher against the local Gemini-protocol server (bench_teacher.py)', [
        f"`GeminiTeacher.label` ({MODEL}, structured JSON, images sent at most 384 px: a file that small as it is, else re-encoded as JPEG) "
        f"labels {a.requests} ranking requests of k={a.k} images each, drawn from {a.files} photos, into a fresh store, {a.concurrency} in flight, "
        f"against `FakeGemini` in its own process with {a.latency * 1000:.0f} ms injected latency per call (faults: 429 {a.p429:.0%}, 503 {a.p503:.0%}). "
        f"Ideal = requests × latency / concurrency = {ideal:.2f} s; throughput vs ideal = ideal / wall (target ≥ 90%). Each run in a fresh process "
        f"(no hash or image cached from another run), median of {a.repeats} interleaved run(s) per row; client CPU = process CPU time of the "
        "labelling process (all threads) during `label()`; server CPU = the fake server's process. " + before + cat_note +
        f"Token accounting (the fake server bills 258 tokens per image + text/4, as Gemini does for images of at most 384 px): "
        f"{r0['inp'] / a.requests:.0f} input + {r0['out'] / a.requests:.0f} output tokens per call, {usd} per call at the "
        "package's price for this model.", tab,
        "Where the client's CPU goes (one thread, process CPU ms, median over 20 images; `request_body` = the prompt + `image_payload` of every "
        "image + base64: 'first' with every image encoded (as the first request that shows it), 'cached' with every image already encoded "
        "once; `sdk_request` = the google-genai SDK's parse of that body; the estimate per request = k × hash + body + SDK parse when every "
        "image is new, body + SDK parse when every image was seen before; before any HTTP):", bd], a.md)


if __name__ == '__main__':
    main()
