"""Teacher calls of a tournament per persona: the paper's pairwise single elimination against k-way groups.

For a catalog of N items (default 4,096) and several personas, plays `paper_distill.tournament.tournament` with the
SimulatedTeacher for k = 2 (pairwise, the paper's ground truth), 3, 5 (the paper's group size for distillation) and 8,
and reports per persona: teacher calls (checked against `tournament.n_calls(N, k)`), rounds (the sequential depth: with
unlimited concurrency a tournament takes rounds × latency), and how often the winner is the true best item, the
winner's median true rank and utility regret. No pixels: the items are hash-only `ImageRef`s (as `bench_teacher
--simulated` uses them) and the teacher's utility is a function of the hash. The utility is known, so is the true best:
item i has a unit latent vector v_i and persona p a unit vector w_p (both random, d = 16), utility = s·√d·⟨v_i, w_p⟩
(standard deviation ≈ s across items, default s = 1); the SimulatedTeacher ranks a group by utility + Gumbel noise of
scale `--temperature` (default 0.5, the package default). A noise-free teacher (`--temperature 0`) always crowns the
true best in a single elimination, so every miss comes from the noise. The wall and CPU time are those of the simulated
teacher through its store (the runner's own cost per call), not of a real model; the personas and the k values are
interleaved and the medians reported.
Usage: python benchmarks/bench_tournament.py [--n 4096] [--personas 16] [--ks 2,3,5,8] [--temperature 0.5] [--quick] [--md PATH]
"""
import argparse, tempfile
from pathlib import Path

import numpy as np

from paper_distill.prompts import ImageRef
from paper_distill.teacher import SimulatedTeacher
from paper_distill.tournament import n_calls, n_rounds, tournament
from report import Table, Timer, emit, median


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=4096, help='items in the catalog')
    ap.add_argument('--personas', type=int, default=16)
    ap.add_argument('--ks', type=str, default='2,3,5,8', help='group sizes, comma-separated (2 = pairwise)')
    ap.add_argument('--temperature', type=float, default=0.5, help="the SimulatedTeacher's Gumbel noise scale")
    ap.add_argument('--utility-sd', type=float, default=1.0, help='spread of the true utility across items')
    ap.add_argument('--dim', type=int, default=16, help='latent dimension of items and personas')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--quick', action='store_true', help='N = 512, 2 personas, k = 2 and 5 (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.n, a.personas, a.ks = 512, 2, '2,5'
    ks = [int(x) for x in a.ks.split(',')]
    rng = np.random.default_rng(a.seed)
    V = rng.standard_normal((a.n, a.dim)); V /= np.linalg.norm(V, axis=1, keepdims=True)
    W = rng.standard_normal((a.personas, a.dim)); W /= np.linalg.norm(W, axis=1, keepdims=True)
    scale = a.utility_sd * np.sqrt(a.dim)
    texts = [f'persona {p}: someone with tastes of their own' for p in range(a.personas)]
    pidx = {t: p for p, t in enumerate(texts)}
    refs = [ImageRef(f'{i:064x}') for i in range(a.n)]
    def utility(persona, hashes):   # the teacher's view: hashes only
        return scale * (V[[int(h, 16) for h in hashes]] @ W[pidx[persona]])
    U = scale * (V @ W.T)                                              # [N, P] true utilities
    best = U.argmax(0)
    rows = {k: [] for k in ks}
    with tempfile.TemporaryDirectory() as d:
        for p, text in enumerate(texts):
            for k in ks:                                               # interleaved: every k sees the same load
                t = SimulatedTeacher(utility, Path(d)/f'store-{p}-{k}', name='bench-tournament', temperature=a.temperature)
                with Timer() as tm:
                    r = tournament(list(range(a.n)), text, t, k=k, images=refs.__getitem__, seed=[a.seed, p])
                assert r.n_calls == n_calls(a.n, k) == t.stats['calls'], (r.n_calls, n_calls(a.n, k), t.stats['calls'])
                assert r.n_rounds == n_rounds(a.n, k)
                rank = int((U[:, p] > U[r.winner, p]).sum()) + 1       # 1 = the true best
                rows[k].append(dict(calls=r.n_calls, rounds=r.n_rounds, hit=r.winner == best[p], rank=rank,
                                    regret=float(U[best[p], p] - U[r.winner, p]), wall=tm.wall, cpu=tm.cpu, invalid=r.n_invalid))
            print(f"  persona {p + 1}/{a.personas} done", flush=True)
        check = []                                                     # a noise-free teacher finds the true best
        for k in ks:
            t = SimulatedTeacher(utility, Path(d)/f'store-check-{k}', name='bench-tournament', temperature=0.0)
            check.append(tournament(list(range(a.n)), texts[0], t, k=k, images=refs.__getitem__, seed=[a.seed, 0]).winner == best[0])
    tab = Table(['k', 'calls / persona', 'n_calls(N, k)', 'vs pairwise', 'rounds', 'winner = true best', 'winner median rank',
                 'worst rank', 'mean regret (utility sd)', 'sim. teacher wall s / persona', 'CPU s / persona', 'CPU ms / call'])
    for k, rs in rows.items():
        c = rs[0]['calls']
        tab.add(f"{k}{' (pairwise, paper)' if k == 2 else ' (paper group size)' if k == 5 else ''}", f"{c:,d}", f"{n_calls(a.n, k):,d}",
                f"{c / n_calls(a.n, 2):.2f}", rs[0]['rounds'], f"{sum(r['hit'] for r in rs)}/{len(rs)}",
                f"{median([r['rank'] for r in rs]):g}", max(r['rank'] for r in rs), f"{np.mean([r['regret'] for r in rs]) / a.utility_sd:.3f}",
                f"{median([r['wall'] for r in rs]):.2f}", f"{median([r['cpu'] for r in rs]):.2f}",
                f"{median([r['cpu'] / r['calls'] for r in rs]) * 1e3:.2f}")
    emit(f'Tournament teacher calls per persona, N = {a.n:,d} (bench_tournament.py)', [
        f"Single-elimination tournaments over N = {a.n:,d} hash-only items for {a.personas} personas with the SimulatedTeacher "
        f"(utility = s·√d·⟨item, persona⟩, d = {a.dim}, s = {a.utility_sd:g}; Gumbel noise of scale {a.temperature:g}; first round "
        "shuffled, seeded per persona). 'rank' = the winner's place in the true utility order (1 = best); regret = best "
        "utility − winner's utility, in units of the utility's spread across items. Rounds are the sequential depth: with "
        "enough concurrency a tournament takes rounds × call latency. Time columns: the simulated teacher through its "
        "store (median over personas), i.e. the package's per-call overhead, not a model's latency.", tab,
        f"Check: with a noise-free teacher (temperature 0) the winner is the true best for persona 0 at every k: "
        f"{'yes' if all(check) else 'NO (' + str(check) + ')'}."], a.md)


if __name__ == '__main__': main()
