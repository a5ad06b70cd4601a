"""Persona search at catalog scale: exact top-10 of paper_distill.retrieval against plain numpy and FAISS, beside the
memory-bandwidth floor; the float16 path; FAISS IVF and HNSW.

For N catalog rows of dimension d (float32, L2-normalised, synthetic clustered data) and batches of queries, prints
Markdown tables of
  - exact top-10: ours (`exact_topk`, kernel 'numpy', the default, and kernel 'torch') vs plain numpy
    (`scores = q @ emb.T` then `np.argpartition`) vs FAISS `IndexFlatIP`, run side by side with interleaved repeats;
    median wall and process CPU time per call, queries/s, the ratio ours / best(numpy, FAISS), and the floor: the
    bytes of one pass over the embeddings divided by the machine's read bandwidth (best of several torch sums over
    the same array);
  - the float16 path (`half_topk`: float16 scan for a shortlist, float32 re-rank of the shortlist): its time against
    float32 exact search and its recall@10 against it;
  - FAISS IVF (nlist = sqrt(N), several nprobe) and HNSW (M = 32, several efSearch): build time, time per query in a
    batch, recall@10.
and the machine: CPU model, BLAS libraries (threadpoolctl), torch threads, numpy/torch/faiss versions.
Usage: python benchmarks/bench_search.py [--quick] [--md PATH] [--repeats 5] [--sizes 10000,100000,1000000]
       [--batches 1,16,256] [--ann-sizes 100000] [--hnsw-max 100000]
The machine may be shared: every figure is a median of interleaved repeats, and the table reports the load average.
Each timed call is preceded by a pause (--pause, 0.25 s): a multi-threaded BLAS call (plain numpy's product) leaves
OpenBLAS threads spinning for about 0.2 s on the 2-core machine, and without the pause they tax whatever runs next
(measured: our 100k-row single-query search 12 ms alone, 19 ms right after plain numpy).
"""
import argparse, os, platform, statistics, sys, time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from paper_distill.retrieval import _default_threads, exact_topk, faiss_index, faiss_topk, half_topk, to_half

try: import faiss
except ImportError: faiss = None


def clustered(n:int, d:int, seed:int=0, centres:int=2000, block:int=1 << 16)->np.ndarray:
    "n unit vectors around `centres` random centres (noise as large as the centres), generated in blocks."
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d), dtype=np.float32)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, block):
        e = min(s + block, n)
        x = c[rng.integers(0, centres, e - s)] + rng.standard_normal((e - s, d), dtype=np.float32)
        out[s:e] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out

def queries(emb:np.ndarray, b:int, seed:int)->np.ndarray:
    "b unit queries near random rows (cosine with their row ≈ 0.7), like personas near the items they like."
    rng = np.random.default_rng(seed)
    x = emb[rng.integers(0, len(emb), b)] + rng.standard_normal((b, emb.shape[1]), dtype=np.float32) / np.sqrt(emb.shape[1])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

def plain_numpy(q, emb, k=10):
    "The baseline: every score, then a partial selection and a sort of the k."
    s = q @ emb.T
    i = np.argpartition(-s, k - 1, axis=1)[:, :k]
    o = np.argsort(-np.take_along_axis(s, i, 1), axis=1)
    return np.take_along_axis(i, o, 1)

PAUSE = 0.25   # seconds before each timed call (--pause)

def timed(fns:dict, repeats:int)->dict:
    "Median wall and process-CPU seconds of each function, one warm-up each, repeats interleaved, a pause before each."
    for f in fns.values(): f()
    res = {k: ([], []) for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            time.sleep(PAUSE)             # let BLAS/OpenMP threads left spinning by the previous call go to sleep
            w, c = time.perf_counter(), time.process_time(); f()
            res[k][0].append(time.perf_counter() - w); res[k][1].append(time.process_time() - c)
    return {k: (statistics.median(w), statistics.median(c)) for k, (w, c) in res.items()}

def bandwidth(emb:np.ndarray, repeats:int=7)->float:
    "Read bandwidth in bytes/s: the best of several multi-threaded torch sums over the array."
    t = torch.from_numpy(emb); t.sum()
    best = min(_once(t.sum) for _ in range(repeats))
    return emb.nbytes / best

def _once(f)->float:
    w = time.perf_counter(); f(); return time.perf_counter() - w

def recall(i, ref)->float: return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(i, ref)]))

def machine()->list[str]:
    from threadpoolctl import threadpool_info
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    flags = next((l.split(':', 1)[1].split() for l in open('/proc/cpuinfo') if l.startswith('flags')), [])
    out = [f"- CPU: {cpu}, {os.cpu_count()} logical cores ({_default_threads()} usable); SIMD: "
           f"{' '.join(f for f in ('avx2', 'fma', 'f16c', 'avx512f', 'avx512_bf16') if f in flags)}",
           f"- numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads, "
           f"CPU capability {torch.backends.cpu.get_cpu_capability()}), faiss {getattr(faiss, '__version__', 'not installed')}",
           f"- load average at start: {open('/proc/loadavg').read().split()[:3]}"]
    for i in threadpool_info():
        out.append(f"- threadpoolctl: {i['internal_api']} {i.get('version')} ({i['user_api']}), architecture "
                   f"{i.get('architecture', '-')}, {i['num_threads']} threads, {Path(i['filepath']).name}")
    out.append(f"- OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')} (reported, never set here)")
    return out

def exact_table(emb_all:np.ndarray, sizes, batches, repeats, lines:list):
    lines += ["", "### Exact top-10, float32 (median of interleaved repeats; wall ms / process-CPU ms per call)", "",
              "| N | batch | floor ms | ours (numpy) | ours (torch) | plain numpy | FAISS flat | ours q/s | ours / best(numpy, FAISS) | ours / floor |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        emb = emb_all[:n]
        bw = bandwidth(emb); floor = emb.nbytes / bw
        fi = faiss_index(emb, 'flat') if faiss else None
        for b in batches:
            q = queries(emb, b, seed=b)
            ref = plain_numpy(q, emb)
            assert recall(exact_topk(q, emb, 10)[1], ref) == 1.0 and recall(exact_topk(q, emb, 10, kernel='torch')[1], ref) == 1.0
            fns = {'ours': lambda: exact_topk(q, emb, 10), 'torch': lambda: exact_topk(q, emb, 10, kernel='torch'),
                   'numpy': lambda: plain_numpy(q, emb)}
            if fi is not None: fns['faiss'] = lambda: fi.search(q, 10)
            t = timed(fns, repeats)
            best = min(t[k][0] for k in ('numpy', 'faiss') if k in t)
            cell = lambda k: f"{t[k][0] * 1e3:.1f} / {t[k][1] * 1e3:.0f}" if k in t else '-'
            lines.append(f"| {n:,} | {b} | {floor * 1e3:.1f} | {cell('ours')} | {cell('torch')} | {cell('numpy')} | {cell('faiss')} | "
                         f"{b / t['ours'][0]:,.0f} | {t['ours'][0] / best:.2f} | {t['ours'][0] / floor:.2f} |")
            print(lines[-1], file=sys.stderr, flush=True)
        lines.append(f"|  | read bandwidth | {bw / 1e9:.1f} GB/s over {emb.nbytes / 2**20:,.0f} MiB |  |  |  |  |  |  |  |")
        fi = None   # free FAISS's copy before the next size

def half_table(emb_all, sizes, batches, repeats, lines):
    lines += ["", "### float16 scan + float32 re-rank (`half_topk`, shortlist max(4k, 64)) vs float32 exact search", "",
              "| N | batch | float32 ms | half ms | half / float32 time | speed-up | recall@10 vs float32 | float16-only recall@10 | floor ms (float16 bytes) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        emb = emb_all[:n]; e16 = to_half(emb)
        floor16 = e16.nbytes / bandwidth(emb)
        for b in batches:
            q = queries(emb, b, seed=100 + b)
            _, ref = exact_topk(q, emb, 10)
            rec, rec16 = recall(half_topk(q, e16, emb, 10)[1], ref), recall(exact_topk(q, e16, 10)[1], ref)
            t = timed({'f32': lambda: exact_topk(q, emb, 10), 'half': lambda: half_topk(q, e16, emb, 10)}, repeats)
            lines.append(f"| {n:,} | {b} | {t['f32'][0] * 1e3:.1f} | {t['half'][0] * 1e3:.1f} | {t['half'][0] / t['f32'][0]:.2f} | "
                         f"{t['f32'][0] / t['half'][0]:.2f}x | {rec:.4f} | {rec16:.4f} | {floor16 * 1e3:.1f} |")
            print(lines[-1], file=sys.stderr, flush=True)

def ann_table(emb_all, sizes, hnsw_max, lines, b=64):
    if faiss is None:
        lines += ["", "FAISS is not installed: no IVF/HNSW table (pip install \"paper_distill[faiss]\")."]; return
    lines += ["", f"### FAISS approximate search vs exact (batch of {b} queries)", "",
              "| N | index | build s | search param | ms / query | recall@10 |", "|---|---|---|---|---|---|"]
    for n in sizes:
        emb = emb_all[:n]; q = queries(emb, b, seed=7)
        _, ref = exact_topk(q, emb, 10)
        t = timed({'exact': lambda: exact_topk(q, emb, 10)}, 3)['exact'][0]
        lines.append(f"| {n:,} | exact (ours) | 0 | - | {t / b * 1e3:.2f} | 1.0000 |")
        kinds = [('ivf', 'nprobe', (1, 8, 32, 128))] + ([('hnsw', 'ef_search', (16, 64, 256))] if n <= hnsw_max else [])
        for kind, param, values in kinds:
            w = time.perf_counter(); ix = faiss_index(emb, kind); build = time.perf_counter() - w
            for v in values:
                _, i = faiss_topk(ix, q, 10, **{param: v})
                t = timed({'s': lambda: faiss_topk(ix, q, 10, **{param: v})}, 3)['s'][0]
                lines.append(f"| {n:,} | {kind} | {build:.1f} | {param}={v} | {t / b * 1e3:.2f} | {recall(i, ref):.4f} |")
                print(lines[-1], file=sys.stderr, flush=True)
        if n > hnsw_max: lines.append(f"| {n:,} | hnsw | not built (N > --hnsw-max {hnsw_max:,}) | | | |")

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='a small sanity run (N up to 50k, batches 1 and 16)')
    ap.add_argument('--md', type=Path, help='also write the Markdown section to this file')
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--dim', type=int, default=512)
    ap.add_argument('--sizes', default='10000,100000,1000000')
    ap.add_argument('--batches', default='1,16,256')
    ap.add_argument('--ann-sizes', default='100000,1000000')
    ap.add_argument('--hnsw-max', type=int, default=100_000, help='largest N for an HNSW build')
    ap.add_argument('--pause', type=float, default=PAUSE, help='seconds of sleep before each timed call')
    a = ap.parse_args()
    globals()['PAUSE'] = a.pause
    if a.quick: a.sizes, a.batches, a.ann_sizes, a.repeats, a.hnsw_max = '10000,50000', '1,16', '20000', 3, 20_000
    sizes, batches, ann = [int(x) for x in a.sizes.split(',')], [int(x) for x in a.batches.split(',')], [int(x) for x in a.ann_sizes.split(',')]
    w = time.perf_counter()
    emb = clustered(max(sizes + ann), a.dim)
    lines = [f"## Persona search (benchmarks/bench_search.py{' --quick' if a.quick else ''})", "", *machine(),
             f"- data: {len(emb):,} clustered unit vectors, d = {a.dim}, float32 ({emb.nbytes / 2**30:.2f} GiB; made in {time.perf_counter() - w:.0f} s); "
             f"queries near random rows; k = 10; {a.repeats} interleaved repeats, {a.pause} s pause before each call"]
    print('\n'.join(lines), file=sys.stderr, flush=True)
    lines.append("- floor = one pass over the float32 rows at the measured read bandwidth: the bound of a single query's search "
                 "on arrays larger than the caches (at 10k rows it says little); batches of 16 and 256 are bound by arithmetic, "
                 "so ours / floor there is for information only")
    exact_table(emb, sizes, batches, a.repeats, lines)
    half_table(emb, sizes, batches, a.repeats, lines)
    ann_table(emb, ann, a.hnsw_max, lines)
    lines.append(f"\nload average at the end: {open('/proc/loadavg').read().split()[:3]}; total {time.perf_counter() - w:.0f} s")
    print('\n'.join(lines))
    if a.md: a.md.write_text('\n'.join(lines) + '\n')

if __name__ == '__main__': main()
