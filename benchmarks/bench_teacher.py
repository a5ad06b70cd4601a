"""Teacher throughput: the real GeminiTeacher against the local fake generateContent server with injected latency.

Prints wall time versus the ideal `requests × latency / concurrency` (default 320 × 0.2 s / 16 = 4 s), and calls per
second versus the ideal `concurrency / latency`. The target is under twice the ideal. Optional fault injection
(--p429/--p503) shows the cost of retries. Run: `python benchmarks/bench_teacher.py [--requests 320 --latency 0.2
--concurrency 16]`.
"""
import argparse, os, tempfile, time
from pathlib import Path

import numpy as np

from paper_distill.fake_gemini import FakeGemini
from paper_distill.gemini import GeminiTeacher
from paper_distill.prompts import rank_request


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--requests', type=int, default=320)
    ap.add_argument('--latency', type=float, default=0.2, help='injected server latency per request, seconds')
    ap.add_argument('--concurrency', type=int, default=16)
    ap.add_argument('--k', type=int, default=5, help='images per ranking request')
    ap.add_argument('--px', type=int, default=32, help='image side in pixels')
    ap.add_argument('--p429', type=float, default=0.0)
    ap.add_argument('--p503', type=float, default=0.0)
    a = ap.parse_args()
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
