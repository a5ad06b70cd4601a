"""CPU cost of distillation: a head-only run of the mini recipe on the default mini world (Nemotron-style × H&M-like).

Runs `distill` twice in fresh processes, each into a new run folder and a new teacher store, with one torch thread:
  - cold: the disk cache of persona embeddings and frozen features empty (a temporary $PAPER_DISTILL_HOME);
  - warm: the same cache again (what every later run over the same data pays).
Prints wall and CPU seconds of the set-up (everything before cycle 1), CPU seconds per cycle (median, min, max over
the 20 cycles: sampling with the student, simulated teacher through the store, 200 training steps, validation), the
whole run, and the BLAS library torch and numpy use (threadpoolctl).
Usage: python benchmarks/bench_distill.py [--cycles 20] [--threads 1]
"""
import argparse, json, os, subprocess, sys, tempfile

CHILD = r"""
import json, sys, time
c0, t0 = time.process_time(), time.time()
import numpy as np, torch
from threadpoolctl import threadpool_info
from paper_distill.world import make_world
from paper_distill.store import TeacherStore
from paper_distill.distill import DistillConfig, distill
from paper_distill.tasks import world_task
root, cycles, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
w = make_world(); task = world_task(w, 'nemotron', 'hm')
world_cpu = time.process_time() - c0
res = distill(task, w.teacher(TeacherStore(root + '/store')), root + '/run', DistillConfig(cycles=cycles, patience=cycles, threads=threads), progress=False)
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
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, 'PAPER_DISTILL_HOME': home, 'OMP_NUM_THREADS': str(a.threads)}
        rows = {}
        for kind in ('cold', 'warm'):
            root = tempfile.mkdtemp(dir=home)
            out = subprocess.run([sys.executable, '-c', CHILD, root, str(a.cycles), str(a.threads)], env=env, capture_output=True, text=True)
            if out.returncode: sys.exit(out.stderr[-3000:])
            rows[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"head-only distillation, default mini world (nemotron × hm), {a.cycles} cycles of 200 groups, {a.threads} torch thread(s)")
    print(f"{'':6s} {'world CPU s':>11s} {'setup CPU s':>11s} {'cycle CPU s (median [min, max])':>32s} {'cycles CPU s':>12s} {'run CPU s':>9s} {'run wall s':>10s} {'test MPR':>8s}")
    for k, r in rows.items():
        print(f"{k:6s} {r['world_cpu']:11.1f} {r['setup_cpu']:11.1f} {r['cycle_median']:>14.2f} [{r['cycle_min']:.2f}, {r['cycle_max']:.2f}]{'':8s} "
              f"{r['cycles_cpu']:12.1f} {r['total_cpu']:9.1f} {r['total_wall']:10.1f} {r['test']:8.3f}")
    print("BLAS:", '; '.join(rows['warm']['blas']))

if __name__ == '__main__': main()
