"""Teacher throughput: the real GeminiTeacher against the local fake generateContent server with injected latency.

Prints wall time versus the ideal `requests × latency / concurrency` (default 320 × 0.2 s / 16 = 4 s), and calls per
second versus the ideal `concurrency / latency`. The target is under twice the ideal. Optional fault injection
(--p429/--p503) shows the cost of retries. Run: `python benchmarks/bench_teacher.py [--requests 320 --latency 0.2
--concurrency 16]`.

`--simulated` measures the labelling runner's own overhead instead: it labels 1, 100, 1,000 and 4,000 ranking requests
with the SimulatedTeacher (a utility of hashes, no pixels: `ImageRef(hash)` images) into a fresh store and prints wall
and process CPU milliseconds per record at each batch size. A runner whose bookkeeping is O(1) per completion costs
the same per record at every size. Run: `python benchmarks/bench_teacher.py --simulated [--concurrency 1]`.
"""
import argparse, os, tempfile, time
from pathlib import Path

import numpy as np

from paper_distill.fake_gemini import FakeGemini
from paper_distill.gemini import GeminiTeacher
from paper_distill.prompts import ImageRef, rank_request
from paper_distill.teacher import SimulatedTeacher


def _hash_utility(persona, hashes):
    "A utility that needs no pixels: a fixed score per (persona, image hash)."
    return np.array([(int(h[-6:], 16) * (len(persona) + 7)) % 1000 / 1000 for h in hashes])


def simulated(sizes=(1, 100, 1000, 4000), k:int=5, concurrency:int=1, min_records:int=400):
    "Per-record wall and CPU ms of `Teacher.label` with the SimulatedTeacher, for each batch size."
    print(f"SimulatedTeacher.label, ranking requests of k={k} ImageRef images, concurrency {concurrency}, fresh store each "
          f"size; sizes below {min_records} repeat label() until {min_records} records (pure Python: no BLAS, no pixels; "
          "CPU = process time of all threads)")
    print(f"{'records':>8} {'calls':>6} {'wall ms/rec':>12} {'CPU ms/rec':>11}")
    with tempfile.TemporaryDirectory() as d:   # warm-up: imports, the store's first open, numpy's generators
        SimulatedTeacher(_hash_utility, Path(d)/'store', name='bench').label([rank_request('w', [ImageRef(f'{j:064x}') for j in range(k)])])
    for n in sizes:
        reps = max(1, -(-min_records // n))
        batches = [[rank_request(f'persona {r}-{i}', [ImageRef(f'{r:04x}{i:08x}{j:052x}') for j in range(k)]) for i in range(n)]
                   for r in range(reps)]
        with tempfile.TemporaryDirectory() as d:
            t = SimulatedTeacher(_hash_utility, Path(d)/'store', name='bench', concurrency=concurrency)
            w0, c0 = time.perf_counter(), time.process_time()
            res = [r for b in batches for r in t.label(b)]
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            assert all(r.ok for r in res) and t.stats['calls'] == n * reps
        print(f"{n:>8} {reps:>6} {wall/(n*reps)*1000:>12.2f} {cpu/(n*reps)*1000:>11.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--requests', type=int, default=320)
    ap.add_argument('--latency', type=float, default=0.2, help='injected server latency per request, seconds')
    ap.add_argument('--concurrency', type=int, default=None, help='requests in flight (default 16; 1 with --simulated)')
    ap.add_argument('--k', type=int, default=5, help='images per ranking request')
    ap.add_argument('--px', type=int, default=32, help='image side in pixels')
    ap.add_argument('--p429', type=float, default=0.0)
    ap.add_argument('--p503', type=float, default=0.0)
    ap.add_argument('--simulated', action='store_true', help="measure the runner's overhead with the SimulatedTeacher instead")
    ap.add_argument('--sizes', type=str, default='1,100,1000,4000', help='batch sizes of --simulated, comma-separated')
    a = ap.parse_args()
    if a.simulated: return simulated(tuple(int(x) for x in a.sizes.split(',')), a.k, a.concurrency or 1)
    a.concurrency = a.concurrency or 16
    os.environ['GEMINI_API_KEY'] = 'local-fake-server-key'  # the fake server runs locally; no real key is used
    rng = np.random.default_rng(0)
    reqs = [rank_request(f'persona {i}', [rng.integers(0, 256, (a.px, a.px, 3), dtype=np.uint8) for _ in range(a.k)])
            for i in range(a.requests)]
    with tempfile.TemporaryDirectory() as d, FakeGemini(latency_s=a.latency, p429=a.p429, p503=a.p503) as server:
        t = GeminiTeacher(Path(d)/'store', model='gemini-bench', base_url=server.url, concurrency=a.concurrency,
                          backoff_s=0.05, max_backoff_s=0.5)
        t0 = time.perf_counter()
        res = t.label(reqs)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter(); t.label(reqs); replay = time.perf_counter() - t1
    ideal = a.requests * a.latency / a.concurrency
    ok = sum(r.ok for r in res)
    print(f"requests {a.requests}, k={a.k}, {a.px}px, latency {a.latency*1000:.0f} ms, concurrency {a.concurrency}, "
          f"faults 429 {a.p429:.0%} / 503 {a.p503:.0%}")
    print(f"labelled {ok}/{a.requests}; HTTP calls {server.count()} (429: {server.count(429)}, 503: {server.count(503)})")
    print(f"wall {wall:.2f} s vs ideal {ideal:.2f} s -> {wall/ideal:.2f}x ideal (target < 2x)")
    print(f"throughput {a.requests/wall:.1f} req/s vs ideal {a.concurrency/a.latency:.1f} req/s")
    print(f"second pass from the store (all hits, no HTTP): {replay:.2f} s")


if __name__ == '__main__':
    main()
