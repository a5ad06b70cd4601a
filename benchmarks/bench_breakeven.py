"""Break-even of persona search: a teacher tournament per persona against the distilled student.

The cost of answering ONE persona over a catalog of N items (N = 1k, 10k, 100k, 1M):
  - teacher: a single-elimination tournament, `tournament.n_calls(N, k)` Gemini calls (k = 2, the paper's pairwise
    ground truth, and k = 5), each costing `--call-latency` seconds (an assumption, default 1 s; shown serial and with
    `--concurrency` calls in flight, round by round) and the dollars the package's own accounting gives: a
    `GeminiTeacher` for the model below, answered by the local Gemini-protocol server (`FakeGemini`, which bills 258
    tokens per image + text/4, as Gemini bills images of at most 384 px, the largest the package sends), its
    `stats['cost_usd']` at the package's price table (`core.price_of`);
  - student: one text embedding + exact top-10 search over N precomputed 512-d float32 image embeddings, measured here
    (text: the shipped mini student `mini:fashion` and a ViT-B-32 of random weights; search: `paper_distill.retrieval.
    exact_topk` when that module exists, else numpy matmul + argpartition, and the section says which); seconds =
    process CPU seconds of one thread (the time of one core to itself: this machine is shared and its walls depend on
    the neighbours), dollars = those × `--core-usd-per-hour` (an assumption);
  - the student's one-off costs, shown apart: embedding the catalog (N × the measured ViT-B-32 / mini seconds per image)
    and the teacher labels its distillation needs (the paper's recipe: 1,000 + 29 × 1,050 = 31,450 ranking calls of
    k = 5; its GPU training time is not included).
Then: the break-even N for one persona including the one-off costs, and how many personas pay off the one-off costs at
each N. Writes a two-panel log-log figure (seconds, dollars) to benchmarks/figures/breakeven.png.
Usage: python benchmarks/bench_breakeven.py [--call-latency 1.0] [--concurrency 16] [--repeats 7] [--quick] [--md PATH]
"""
import argparse, json, os, subprocess, sys, tempfile
from pathlib import Path

import numpy as np

from paper_distill.tournament import n_calls
from report import HERE, Table, emit

MODEL = 'gemini-2.5-flash'
PERSONA = ("A 34-year-old nurse from Leeds who spends her weekends hiking in the Peak District with her two children; she "
           "prefers practical, hard-wearing clothes in muted colours, buys mid-priced brands, dislikes logos and fast "
           "fashion, and is looking for something comfortable she can also wear to a relaxed dinner out.")
TABLE_N = (1_000, 10_000, 100_000, 1_000_000)

# ---------------------------------------------------------------------------------------------------------------- teacher

def teacher_accounting(ks, n_req:int=4)->dict:
    "Input/output tokens and USD per call for each k, from GeminiTeacher's own stats against the local server."
    from paper_distill.fake_gemini import FakeGemini
    from paper_distill.gemini import GeminiTeacher
    from paper_distill.core import price_of
    from paper_distill.prompts import pair_request, rank_request
    os.environ['GEMINI_API_KEY'] = 'local-fake-server-key'   # the fake server runs locally; no real key is used
    rng, out = np.random.default_rng(0), {}
    with tempfile.TemporaryDirectory() as d, FakeGemini() as server:
        for k in ks:
            t = GeminiTeacher(Path(d)/f's{k}', model=MODEL, base_url=server.url, concurrency=4)
            mk = pair_request if k == 2 else rank_request
            reqs = [mk(f'{PERSONA} ({i})', [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(k)]) for i in range(n_req)]
            assert all(r.ok for r in t.label(reqs))
            s = t.stats
            out[k] = dict(input=s['input_tokens'] / s['calls'], output=s['output_tokens'] / s['calls'], usd=s['cost_usd'] / s['calls'])
    out['price'] = price_of(MODEL)
    return out

def rounds_of(n:int, k:int)->list[int]:
    "Teacher calls in each round of a tournament over n items (the same recursion as `tournament.n_calls`)."
    r = []
    while n > 1: r.append(n // k + (n % k >= 2)); n = -(-n // k)
    return r

def teacher_seconds(n:int, k:int, latency:float, concurrency:int)->float:
    "Wall seconds of one tournament with `concurrency` calls in flight (rounds are sequential)."
    return sum(-(-m // concurrency) for m in rounds_of(n, k)) * latency

# ---------------------------------------------------------------------------------------------------------------- student

STUDENT = r"""
import json, statistics, sys, time
import numpy as np, torch
from PIL import Image
from paper_distill.student import Student, StudentConfig
name, n_img, repeats, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(t) for t in sys.argv[4].split(',')]
st = Student(StudentConfig(model=name))
imgs = [Image.fromarray(a) for a in np.random.default_rng(0).integers(0, 256, (n_img, 256, 256, 3), dtype=np.uint8)]
persona = sys.argv[5]
def text(i): st.embed_texts([f'{persona} [{i}]'])          # a new text each time: no cache hit
def images(): st.embed_images(imgs, batch_size=32, progress=False)
for th in threads: torch.set_num_threads(th); text(-th); images()   # warm-up
res = {th: dict(text_wall=[], text_cpu=[], img_wall=[], img_cpu=[]) for th in threads}
i = 0
for _ in range(repeats):                                    # interleaved: thread counts and kinds see the same load
    for th in threads:
        torch.set_num_threads(th)
        for _ in range(3):
            i += 1; w, c = time.perf_counter(), time.process_time(); text(i)
            res[th]['text_wall'].append(time.perf_counter() - w); res[th]['text_cpu'].append(time.process_time() - c)
        w, c = time.perf_counter(), time.process_time(); images()
        res[th]['img_wall'].append((time.perf_counter() - w) / n_img); res[th]['img_cpu'].append((time.process_time() - c) / n_img)
print(json.dumps({th: {k: statistics.median(v) for k, v in r.items()} for th, r in res.items()} | {'dim': st.embed_dim}))
"""

def student_costs(name:str, n_img:int, repeats:int, threads=(1, 2))->dict:
    out = subprocess.run([sys.executable, '-c', STUDENT, name, str(n_img), str(repeats), ','.join(map(str, threads)), PERSONA],
                         capture_output=True, text=True)
    if out.returncode: raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

SEARCH = r"""
import inspect, json, statistics, sys, time
import numpy as np
sizes, repeats, dim, topk = [int(x) for x in sys.argv[1].split(',')], int(sys.argv[2]), int(sys.argv[3]), 10
def np_topk(q, E, k=topk):
    s = E @ q
    idx = np.argpartition(-s, k)[:k]
    return idx[np.argsort(-s[idx])]
how, fn = 'numpy matmul + np.argpartition (paper_distill.retrieval is absent)', np_topk
try:
    from paper_distill.retrieval import exact_topk
    how = 'paper_distill.retrieval.exact_topk (its default kernel and threads)'
except ImportError: exact_topk = None
except Exception as e: exact_topk, how = None, f'numpy matmul + np.argpartition (importing paper_distill.retrieval failed: {type(e).__name__}: {e})'
rng = np.random.default_rng(0)
E_all = rng.standard_normal((max(sizes), dim), dtype=np.float32); E_all /= np.linalg.norm(E_all, axis=1, keepdims=True)
qs = rng.standard_normal((repeats + 1, dim), dtype=np.float32); qs /= np.linalg.norm(qs, axis=1, keepdims=True)
def ids_of(got):
    "The item ids of an answer: an int array, or the int member of a (scores, ids) / (ids, scores) pair."
    if isinstance(got, tuple):
        got = next((g for g in got if np.asarray(g).dtype.kind in 'iu'), got[-1])
    return np.asarray(got).reshape(-1)[:topk].tolist()
if exact_topk is not None:
    E0, errs, found = E_all[:1000], [], None
    ref = set(np_topk(qs[0], E0, topk).tolist())
    forms = {'exact_topk(q[None, :], E, 10)': lambda q, E: exact_topk(q[None], E, topk),
             'exact_topk(q, E, 10)': lambda q, E: exact_topk(q, E, topk),
             'exact_topk(q[None, :], E, k=10)': lambda q, E: exact_topk(q[None], E, k=topk)}
    for form, call in forms.items():
        try:
            if set(ids_of(call(qs[0], E0))) == ref: found = form; fn = call; break
            errs.append(f'{form}: other items than numpy')
        except Exception as e: errs.append(f'{form}: {type(e).__name__}: {str(e)[:120]}')
    if found: how += f', called as {found}'
    else: how = 'numpy matmul + np.argpartition (paper_distill.retrieval.exact_topk exists but no call form agreed with numpy: ' + '; '.join(errs) + ')'
from threadpoolctl import threadpool_limits
views = {n: E_all[:n] for n in sizes}
for n in sizes: fn(qs[0], views[n])                      # warm-up
times = {th: {n: dict(wall=[], cpu=[]) for n in sizes} for th in (1, 2)}
for r in range(repeats):                                 # interleaved over sizes and BLAS thread counts
    for th in (1, 2):
        with threadpool_limits(th):
            for n in sizes:
                w, c = time.perf_counter(), time.process_time(); fn(qs[r + 1], views[n])
                times[th][n]['wall'].append(time.perf_counter() - w); times[th][n]['cpu'].append(time.process_time() - c)
med = {th: {n: {k: statistics.median(v) for k, v in t.items()} for n, t in tt.items()} for th, tt in times.items()}
best = {n: min((dict(med[th][n], threads=th) for th in med), key=lambda d: d['wall']) for n in sizes}
print(json.dumps(dict(how=how, sizes=best, by_threads=med)))
"""

def search_costs(sizes, repeats:int, dim:int=512)->dict:
    out = subprocess.run([sys.executable, '-c', SEARCH, ','.join(map(str, sizes)), str(repeats), str(dim)], capture_output=True, text=True)
    if out.returncode: raise SystemExit(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r['sizes'] = {int(n): v for n, v in r['sizes'].items()}
    r['by_threads'] = {int(t): {int(n): v for n, v in d.items()} for t, d in r['by_threads'].items()}
    return r

def loglog_interp(xs, ys):
    "A function of N interpolating (xs, ys) on log-log axes, extrapolating linearly in N beyond the ends."
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    def f(n):
        n = np.asarray(n, float)
        mid = np.exp(np.interp(np.log(n), np.log(xs), np.log(ys)))
        return np.where(n > xs[-1], ys[-1] * n / xs[-1], np.where(n < xs[0], ys[0] * n / xs[0], mid))
    return f

def fmt_s(s:float)->str:
    if s < 1e-3: return f"{s * 1e6:.0f} µs"
    if s < 1: return f"{s * 1e3:.1f} ms"
    if s < 120: return f"{s:.1f} s"
    if s < 2 * 3600: return f"{s / 60:.1f} min"
    if s < 2 * 86400: return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"

def fmt_usd(x:float)->str:
    if x == 0: return "$0"
    if x < 0.01: return f"${x:.2e}"
    if x < 100: return f"${x:.2f}"
    return f"${x:,.0f}"

def breakeven_n(teacher_cost, student_cost, lo:int=2, hi:int=10**9):
    "Smallest N in [lo, hi] with teacher_cost(N) >= student_cost(N) (both grow with N), or None."
    if teacher_cost(hi) < student_cost(hi): return None
    if teacher_cost(lo) >= student_cost(lo): return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if teacher_cost(mid) >= student_cost(mid): hi = mid
        else: lo = mid
    return hi

# ---------------------------------------------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--call-latency', type=float, default=1.0, help='seconds per teacher call (an assumption)')
    ap.add_argument('--concurrency', type=int, default=16, help='teacher calls in flight for the parallel figures')
    ap.add_argument('--core-usd-per-hour', type=float, default=0.05, help="price of one CPU core's time (an assumption)")
    ap.add_argument('--distill-calls', type=int, default=1000 + 29 * 1050, help="k=5 teacher calls to distil (the paper's recipe)")
    ap.add_argument('--thinking-tokens', type=int, default=0, help='thinking tokens billed per teacher call (as output)')
    ap.add_argument('--repeats', type=int, default=7, help='interleaved timed repeats (median reported)')
    ap.add_argument('--fig', type=str, default=str(HERE/'figures'/'breakeven.png'))
    ap.add_argument('--link-from', type=str, default=None, help='folder the Markdown links the figure from (default: benchmarks/, where RESULTS.md lives)')
    ap.add_argument('--quick', action='store_true', help='fewer repeats and images; search up to N = 100k, 1M extrapolated')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    search_sizes = [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]
    n_img = dict(mini=256, vit=32)
    if a.quick: a.repeats, search_sizes, n_img = 2, [1_000, 10_000, 100_000], dict(mini=64, vit=8)

    acc = teacher_accounting((2, 5))
    price_in, price_out = acc['price']
    usd = {k: acc[k]['usd'] + a.thinking_tokens * price_out / 1e6 for k in (2, 5)}
    print(f"teacher accounting: {json.dumps({k: acc[k] for k in (2, 5)})}", flush=True)
    stud = {'mini:fashion': student_costs('mini:fashion', n_img['mini'], a.repeats),
            'ViT-B-32': student_costs('ViT-B-32', n_img['vit'], a.repeats)}
    print(f"students: {json.dumps(stud)}", flush=True)
    srch = search_costs(search_sizes, max(a.repeats, 5))
    print(f"search: {json.dumps(srch)}", flush=True)

    # the student's figures: the faster thread setting for a query's text, the faster one for image throughput
    # The student's seconds: process CPU seconds with ONE thread, i.e. the wall time of one core to itself. On this shared
    # machine the walls were up to 2x the CPU time (the process waited for a core), and two threads were slower than one
    # (both figures are printed); CPU time of one thread is the figure that does not depend on the neighbours' load.
    text_s = {m: stud[m]['1']['text_cpu'] for m in stud}
    img_s = {m: stud[m]['1']['img_cpu'] for m in stud}
    ns = sorted(srch['sizes']); search_f = loglog_interp(ns, [srch['by_threads'][1][n]['cpu'] for n in ns])
    extrap = [n for n in TABLE_N if n > ns[-1]]
    usd_s = a.core_usd_per_hour / 3600
    L, C = a.call_latency, a.concurrency
    main_st = 'ViT-B-32'
    def t_sec(n, k, c=1): return teacher_seconds(int(n), k, L, c)
    def t_usd(n, k): return n_calls(int(n), k) * usd[k]
    def q_sec(n, m=main_st): return text_s[m] + float(search_f(n))
    def embed_sec(n, m=main_st): return n * img_s[m]
    labels_sec, labels_usd = a.distill_calls * L, a.distill_calls * usd[5]
    labels_sec_c = -(-a.distill_calls // C) * L
    def one_off_sec(n, c=1): return (labels_sec if c == 1 else labels_sec_c) + embed_sec(n)
    def one_off_usd(n): return labels_usd + embed_sec(n) * usd_s

    # tables
    ts = Table(['N', 'pairwise calls', 'k=5 calls', 'teacher pairwise, serial', f'pairwise, {C} in flight', 'k=5, serial',
                f'k=5, {C} in flight', 'student query (ViT-B-32)', 'of which search', 'student query (mini)',
                'catalog embedding (ViT-B-32)', 'catalog embedding (mini)'])
    for n in TABLE_N:
        ts.add(f"{n:,d}", f"{n_calls(n, 2):,d}", f"{n_calls(n, 5):,d}", fmt_s(t_sec(n, 2)), fmt_s(t_sec(n, 2, C)), fmt_s(t_sec(n, 5)),
               fmt_s(t_sec(n, 5, C)), fmt_s(q_sec(n)), fmt_s(float(search_f(n))) + (' (extrap.)' if n in extrap else ''),
               fmt_s(q_sec(n, 'mini:fashion')), fmt_s(embed_sec(n)), fmt_s(embed_sec(n, 'mini:fashion')))
    tu = Table(['N', 'teacher pairwise $', 'teacher k=5 $', 'student query $', 'catalog embedding $ (ViT-B-32)',
                'one-off: distil labels + embedding $', 'personas to pay off the one-off (vs pairwise)', '(vs k=5)'])
    for n in TABLE_N:
        q = q_sec(n) * usd_s
        tu.add(f"{n:,d}", fmt_usd(t_usd(n, 2)), fmt_usd(t_usd(n, 5)), fmt_usd(q), fmt_usd(embed_sec(n) * usd_s), fmt_usd(one_off_usd(n)),
               f"{one_off_usd(n) / (t_usd(n, 2) - q):,.1f}", f"{one_off_usd(n) / (t_usd(n, 5) - q):,.1f}")
    # break-even N for one persona, one-off costs included
    be = {}
    for k in (2, 5):
        be[('usd', k)] = breakeven_n(lambda n: t_usd(n, k), lambda n: one_off_usd(n) + q_sec(n) * usd_s)
        be[('sec', k)] = breakeven_n(lambda n: t_sec(n, k), lambda n: one_off_sec(n) + q_sec(n))
        be[('sec_c', k)] = breakeven_n(lambda n: t_sec(n, k, C), lambda n: one_off_sec(n, C) + q_sec(n))
        be[('usd_e', k)] = breakeven_n(lambda n: t_usd(n, k), lambda n: embed_sec(n) * usd_s + q_sec(n) * usd_s)
        be[('sec_e', k)] = breakeven_n(lambda n: t_sec(n, k), lambda n: embed_sec(n) + q_sec(n))
        be[('sec_ce', k)] = breakeven_n(lambda n: t_sec(n, k, C), lambda n: embed_sec(n) + q_sec(n))
    tb = Table(['one persona carries', 'cost', 'teacher pairwise (paper)', 'teacher k=5'], align='llrr')
    def be_cell(kind, k, cost):
        n = be[(kind, k)]
        return 'never (N up to 10^9)' if n is None else f"N = {n:,d} ({cost(n, k)})"
    usd_c, sec_c, secc_c = (lambda n, k: fmt_usd(t_usd(n, k))), (lambda n, k: fmt_s(t_sec(n, k))), (lambda n, k: fmt_s(t_sec(n, k, C)))
    for who, sfx in (('distil labels + catalog embedding + query', ''), ('catalog embedding + query (labels already paid)', '_e')):
        tb.add(who, 'dollars', be_cell('usd' + sfx, 2, usd_c), be_cell('usd' + sfx, 5, usd_c))
        tb.add('', 'seconds, teacher calls one at a time', be_cell('sec' + sfx, 2, sec_c), be_cell('sec' + sfx, 5, sec_c))
        tb.add('', f'seconds, {C} teacher calls in flight', be_cell(('sec_c' if not sfx else 'sec_ce'), 2, secc_c),
               be_cell(('sec_c' if not sfx else 'sec_ce'), 5, secc_c))

    fig = make_figure(a, t_sec, t_usd, q_sec, embed_sec, one_off_sec, one_off_usd, usd_s, be, C, main_st)
    link_from = Path(a.link_from) if a.link_from else HERE
    rel = os.path.relpath(fig, link_from.resolve())
    st_txt = '; '.join(f"{m}: text {text_s[m] * 1e3:.1f} ms, images {img_s[m] * 1e3:.1f} ms each" for m in stud)
    thr = ', '.join(f"{m} {th} thread{'s' if th != '1' else ''} {stud[m][th]['text_wall'] * 1e3:.0f} / {stud[m][th]['text_cpu'] * 1e3:.0f} "
                    f"(images {stud[m][th]['img_wall'] * 1e3:.0f} / {stud[m][th]['img_cpu'] * 1e3:.0f} ms each)" for m in stud for th in stud[m] if th != 'dim')
    bt = srch['by_threads']
    sr = ', '.join(f"{n:,d}: {bt[1][n]['wall'] * 1e3:.2f} / {bt[2][n]['wall'] * 1e3:.2f} ms wall, {bt[1][n]['cpu'] * 1e3:.2f} / "
                   f"{bt[2][n]['cpu'] * 1e3:.2f} ms CPU" for n in sorted(srch['sizes']))
    emit('Break-even: teacher tournament per persona vs the distilled student (bench_breakeven.py)', [
        "Cost of answering ONE persona over a catalog of N items. Teacher: a tournament of `n_calls(N, k)` Gemini calls. "
        f"Assumptions (not measured): {L:g} s per teacher call; {C} calls in flight where stated (a round must finish before "
        f"the next starts); a CPU core costs ${a.core_usd_per_hour:.2f}/h (a 2-vCPU machine at ${2 * a.core_usd_per_hour:.2f}/h); {MODEL} (the package has no default "
        f"model: it names {MODEL} in its error message and prices it at ${price_in}/${price_out} per 1M input/output tokens in "
        f"the package's price table); {a.thinking_tokens} thinking tokens per call (2.5 Flash thinks by default unless the budget is 0; "
        f"every 100 thinking tokens add ${100 * price_out / 1e6:.5f} per call). Tokens and dollars per call from the package's "
        f"own accounting (`GeminiTeacher.stats` against `FakeGemini`, 258 tokens per image ≤ 384 px + text/4, a ~{len(PERSONA)}-"
        f"character persona): pairwise {acc[2]['input']:.0f} in + {acc[2]['output']:.0f} out tokens = {fmt_usd(usd[2])}/call; "
        f"k=5 {acc[5]['input']:.0f} in + {acc[5]['output']:.0f} out = {fmt_usd(usd[5])}/call.",
        f"Student, measured here (median of {a.repeats} interleaved repeats, each model in a fresh process). Used below: process "
        f"CPU seconds with one torch / BLAS thread, i.e. the time of one core to itself: {st_txt}. Wall / CPU ms per text "
        f"at 1 and 2 threads (on a busy machine the wall exceeds the CPU time while the process waits for a core): {thr}. "
        f"Image embedding = `Student.embed_images` on "
        f"256-px PIL images (preprocess + forward; decoding real JPEGs adds a little: see bench_embed). Search over N × 512 "
        f"float32 (top 10, one query) with {srch['how']}, BLAS limited to 1 / 2 threads by threadpoolctl (1 thread's CPU time used); wall and CPU ms at 1 / 2 threads: {sr}" + (f"; N = {', '.join(f'{n:,d}' for n in extrap)} extrapolated "
        "linearly from the largest measured N" if extrap else '') + ". Student dollars = one-thread CPU seconds × the core's price.",
        ts, tu,
        f"Break-even N: the smallest catalog at which one persona's tournament costs as much as the student's answer with "
        f"its one-off costs on that persona: either all of them (the paper recipe's {a.distill_calls:,d} "
        f"k=5 distillation labels = {fmt_usd(labels_usd)} and {fmt_s(labels_sec)} serial / {fmt_s(labels_sec_c)} with {C} in "
        f"flight, plus embedding the N images with ViT-B-32, plus the query) or only the catalog embedding (a student already distilled). In brackets: the teacher's cost "
        "for that persona there (= the student's total). Distillation's GPU training time is not included.",
        tb] + ([f"'never': per item, embedding on one CPU core ({img_s[main_st] * 1e3:.0f} ms per image with {main_st}) costs "
        f"more time than the teacher's calls per item when {C} are in flight ({L / C * 1e3:.0f} ms per pairwise call), so one "
        "persona never pays off the catalog embedding in time; a GPU embeds a ViT-B-32 image in well under a millisecond."]
        if any(v is None for v in be.values()) else []) + [f"![break-even: seconds and dollars per persona against N]({rel})"], a.md)


def make_figure(a, t_sec, t_usd, q_sec, embed_sec, one_off_sec, one_off_usd, usd_s, be, C, main_st):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    N = np.unique(np.round(np.logspace(3, 6, 61)).astype(int))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2))
    ax1.plot(N, [t_sec(n, 2) for n in N], 'C3-', label='teacher tournament, pairwise (serial)')
    ax1.plot(N, [t_sec(n, 5) for n in N], 'C1-', label='teacher tournament, k=5 (serial)')
    ax1.plot(N, [t_sec(n, 2, C) for n in N], 'C3--', label=f'teacher pairwise, {C} calls in flight')
    ax1.plot(N, [q_sec(n) for n in N], 'C0-', label=f'student query ({main_st}): text + exact search')
    ax1.plot(N, [q_sec(n, 'mini:fashion') for n in N], 'C9-', label='student query (mini)')
    ax1.plot(N, [embed_sec(n) for n in N], 'C2:', label=f'one-off: embed catalog ({main_st})')
    ax1.plot(N, [one_off_sec(n) for n in N], 'C2-.', label='one-off: distil labels (serial) + embed catalog')
    if be[('sec', 2)]: ax1.plot([be[('sec', 2)]], [t_sec(be[('sec', 2)], 2)], 'ko', ms=6, label=f"break-even, pairwise: N={be[('sec', 2)]:,d}")
    ax1.set(xscale='log', yscale='log', xlabel='catalog size N', ylabel='seconds for one persona',
            title=f'Time ({a.call_latency:g} s per teacher call)')
    ax2.plot(N, [t_usd(n, 2) for n in N], 'C3-', label='teacher tournament, pairwise')
    ax2.plot(N, [t_usd(n, 5) for n in N], 'C1-', label='teacher tournament, k=5')
    ax2.plot(N, [q_sec(n) * usd_s for n in N], 'C0-', label=f'student query ({main_st})')
    ax2.plot(N, [embed_sec(n) * usd_s for n in N], 'C2:', label=f'one-off: embed catalog ({main_st})')
    ax2.plot(N, [one_off_usd(n) for n in N], 'C2-.', label='one-off: distil labels + embed catalog')
    if be[('usd', 2)]: ax2.plot([be[('usd', 2)]], [t_usd(be[('usd', 2)], 2)], 'ko', ms=6, label=f"break-even, pairwise: N={be[('usd', 2)]:,d}")
    if be[('usd', 5)]: ax2.plot([be[('usd', 5)]], [t_usd(be[('usd', 5)], 5)], 'ks', ms=6, label=f"break-even, k=5: N={be[('usd', 5)]:,d}")
    ax2.set(xscale='log', yscale='log', xlabel='catalog size N', ylabel='US dollars for one persona',
            title=f'Dollars ({MODEL} price; CPU core ${a.core_usd_per_hour:.2f}/h)')
    for ax in (ax1, ax2): ax.grid(True, which='both', alpha=0.3); ax.legend(fontsize=7.5, loc='center right')
    fig.suptitle('One persona over N items: teacher tournament vs distilled student (student measured on this machine)', fontsize=11)
    fig.tight_layout()
    Path(a.fig).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.fig, dpi=120); plt.close(fig)
    print(f"figure written to {a.fig}")
    return Path(a.fig).resolve()


if __name__ == '__main__': main()
