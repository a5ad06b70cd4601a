"""CPU seconds per run-cycle of head-only distillation: runs alone (`distill`) vs in lockstep (`distill_lockstep`).

The mini profile's recipe (DistillConfig.mini) on nemotron × hm, R runs differing in seed, a fixed number of cycles
(patience off), single thread. The teacher store and the feature caches are warmed first, so both sides pay the same
store hits and no embedding; the two sides alternate, and each figure is the process CPU time and wall time of the
whole call divided by R × cycles. Also prints the BLAS kernel (threadpoolctl) and torch's thread count.
Usage: python benchmarks/bench_lockstep.py [--runs 1,3,6] [--cycles 5] [--md PATH]
"""
import argparse, platform, tempfile, time
from pathlib import Path

import torch
from threadpoolctl import threadpool_info

from paper_distill.distill import DistillConfig, distill
from paper_distill.lockstep import distill_lockstep
from paper_distill.store import TeacherStore
from paper_distill.tasks import world_task
from paper_distill.world import WorldConfig, make_world


def _timed(f):
    t0, c0 = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - t0, time.process_time() - c0


def main(runs=(1, 3, 6), cycles:int=5):
    torch.set_num_threads(1)
    w = make_world(WorldConfig()); task = world_task(w, 'nemotron', 'hm')
    d = Path(tempfile.mkdtemp()); teacher = w.teacher(TeacherStore(d/'store'))
    cfgs = [DistillConfig.mini(cycles=cycles, patience=cycles + 1, seed=s) for s in range(max(runs))]
    distill_lockstep(task, teacher, [d/'warm'/str(s) for s in range(len(cfgs))], cfgs, progress=False)   # store and caches warm
    rows = []
    for R in runs:
        tag = f'{R}-{time.time_ns()}'
        lock = _timed(lambda: distill_lockstep(task, teacher, [d/'lock'/tag/str(s) for s in range(R)], cfgs[:R], progress=False))
        alone = _timed(lambda: [distill(task, teacher, d/'alone'/tag/str(s), cfgs[s], progress=False) for s in range(R)])
        n = R * cycles
        rows.append((R, alone[1] / n, lock[1] / n, alone[0] / n, lock[0] / n))
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, {i.get('num_threads')} threads)" for i in threadpool_info()]
    out = ["## Lockstep training (head-only distillation, mini profile)", "",
           f"`python benchmarks/bench_lockstep.py --runs {','.join(map(str, runs))} --cycles {cycles}` · torch {torch.__version__}, "
           f"1 torch thread · BLAS: {'; '.join(blas)} · {platform.processor() or platform.machine()}", "",
           "Per run-cycle (sampling, store hits, training, validation, checkpoint), whole calls divided by runs × cycles.", "",
           "| runs | CPU s alone | CPU s lockstep | CPU ratio | wall s alone | wall s lockstep |", "|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {R} | {a:.3f} | {l:.3f} | {l / a:.2f} | {wa:.3f} | {wl:.3f} |" for R, a, l, wa, wl in rows]
    return '\n'.join(out) + '\n'


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', default='1,3,6'); ap.add_argument('--cycles', type=int, default=5); ap.add_argument('--md')
    a = ap.parse_args()
    md = main(tuple(int(x) for x in a.runs.split(',')), a.cycles)
    print(md)
    if a.md: Path(a.md).write_text(md)
