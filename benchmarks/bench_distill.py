"""CPU cost of distillation: a head-only run of the mini recipe on the default mini world (Nemotron-style × H&M-like).

Runs `distill` twice in fresh processes, each into a new run folder and a new teacher store, with one torch thread:
  - cold: the disk cache of persona embeddings and frozen features empty (a temporary $PAPER_DISTILL_HOME);
  - warm: the same cache again (what every later run over the same data pays).
Prints wall and CPU seconds of the set-up (everything before cycle 1), CPU seconds per cycle (median, min, max over
the 20 cycles: sampling with the student, simulated teacher through the store, 200 training steps, validation), the
whole run, and the BLAS library torch and numpy use (threadpoolctl).
Usage: python benchmarks/bench_distill.py [--cycles 20] [--threads 1] [--quick] [--md PATH]
"""
import argparse, json, os, subprocess, sys, tempfile
from report import Table, emit

CHILD = r"""
import json, sys, time
c0, t0 = time.process_time(), time.time()
import numpy as np, torch
from threadpoolctl import threadpool_info
from paper_distill.world import WorldConfig, make_world
from paper_distill.store import TeacherStore
from paper_distill.distill import DistillConfig, distill
from paper_distill.tasks import world_task
root, cycles, threads, smoke = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == 'smoke'
w = make_world(WorldConfig.smoke() if smoke else WorldConfig()); task = world_task(w, 'nemotron', 'hm')
world_cpu = time.process_time() - c0
res = distill(task, w.teacher(TeacherStore(root + '/store')), root + '/run', (DistillConfig.smoke(cycles=cycles, patience=cycles, threads=threads) if smoke else DistillConfig(cycles=cycles, patience=cycles, threads=threads)), progress=False)
total_cpu, total_wall = time.process_time() - c0, time.time() - t0
cyc = res.log.cpu_seconds.iloc[1:]
print(json.dumps(dict(world_cpu=world_cpu, total_cpu=total_cpu, total_wall=total_wall, cycles_cpu=float(cyc.sum()),
                      cycle_median=float(cyc.median()), cycle_min=float(cyc.min()), cycle_max=float(cyc.max()),
                      setup_cpu=total_cpu - float(cyc.sum()) - world_cpu, test=res.test['test']['mpr_truth'],
                      blas=sorted({f"{i['internal_api']} {i.get('version')} ({i['user_api']}, {i['num_threads']} threads)" for i in threadpool_info()}))))
"""

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--cycles', type=int, default=20)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--quick', action='store_true', help='the smoke world and DistillConfig.smoke, 2 cycles (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.cycles = 2
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, 'PAPER_DISTILL_HOME': home, 'OMP_NUM_THREADS': str(a.threads)}
        rows = {}
        for kind in ('cold', 'warm'):
            root = tempfile.mkdtemp(dir=home)
            out = subprocess.run([sys.executable, '-c', CHILD, root, str(a.cycles), str(a.threads), 'smoke' if a.quick else 'default'], env=env, capture_output=True, text=True)
            if out.returncode: sys.exit(out.stderr[-3000:])
            rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    t = Table(['', 'world CPU s', 'setup CPU s', 'cycle CPU s median', 'cycle CPU s min', 'cycle CPU s max', 'cycles CPU s',
               'run CPU s', 'run wall s', 'test MPR'])
    for k, r in rows.items():
        t.add(k, f"{r['world_cpu']:.1f}", f"{r['setup_cpu']:.1f}", f"{r['cycle_median']:.2f}", f"{r['cycle_min']:.2f}", f"{r['cycle_max']:.2f}",
              f"{r['cycles_cpu']:.1f}", f"{r['total_cpu']:.1f}", f"{r['total_wall']:.1f}", f"{r['test']:.3f}")
    emit('CPU cost of distillation (bench_distill.py)', [
        (f"QUICK: the smoke world and `DistillConfig.smoke`, {a.cycles} cycles; " if a.quick else
         f"Head-only distillation, default mini world (nemotron × hm), {a.cycles} cycles of 200 groups, ") + f"{a.threads} torch thread(s); "
        "cold = empty disk cache of persona embeddings and frozen features, warm = the same cache again; each run in a fresh "
        "process (one run each: CPU seconds, which the machine's load disturbs less than wall seconds).", t,
        "BLAS: " + '; '.join(rows['warm']['blas'])], a.md)

if __name__ == '__main__': main()
