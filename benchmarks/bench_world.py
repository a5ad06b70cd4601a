"""Time the mini world's generation: the default world (and the smoke world), each in fresh processes.

Prints wall time per run (mean, min, max over repeats), the time of each stage, peak memory (max RSS), the world's
content hash (identical across runs = bit-identical), and the time to hash every image (what the teacher's
`utility` needs once). Usage: python benchmarks/bench_world.py [--repeats 3]
"""
import argparse, json, subprocess, sys

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from paper_distill.world import WorldConfig, make_world
import paper_distill.world as W
cfg = WorldConfig.from_json(sys.argv[1])
t1 = time.perf_counter(); w = make_world(cfg); t2 = time.perf_counter()
n_img = sum(len(c) for c in w.catalogs.values()) + len(w.pretrain)
w._hash_index(); t3 = time.perf_counter()
h = w.hash()
print(json.dumps(dict(import_s=t1 - t0, generate_s=t2 - t1, hash_images_s=t3 - t2, images=n_img,
                      personas=sum(len(p) for p in w.personas.values()), hash=h,
                      max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)))
"""

def run(cfg_json):
    out = subprocess.run([sys.executable, '-c', CHILD, cfg_json], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--repeats', type=int, default=3, help='fresh-process runs per world')
    a = ap.parse_args()
    from paper_distill.world import WorldConfig
    import os
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name, cfg in [('default', WorldConfig()), ('smoke', WorldConfig.smoke())]:
        rs = [run(cfg.to_json()) for _ in range(a.repeats)]
        g = [r['generate_s'] for r in rs]
        print(f"{name:8s} world: {rs[0]['images']} images + {rs[0]['personas']} personas | generate "
              f"mean {sum(g)/len(g):.2f} s (min {min(g):.2f}, max {max(g):.2f}) over {len(g)} fresh processes | "
              f"hash all images {rs[0]['hash_images_s']:.2f} s | import {rs[0]['import_s']:.2f} s | "
              f"peak RSS {max(r['max_rss_mb'] for r in rs):.0f} MB | identical: {len({r['hash'] for r in rs}) == 1} "
              f"({rs[0]['hash'][:16]})")

if __name__ == '__main__': main()
