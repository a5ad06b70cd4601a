"""Time the mini world's generation: the default world (and the smoke world), each in fresh processes.

Prints wall time per run (mean, min, max over repeats), the time of each stage, peak memory (max RSS), the world's
content hash (identical across runs = bit-identical), and the time to hash every image (what the teacher's
`utility` needs once). Usage: python benchmarks/bench_world.py [--repeats 3] [--quick] [--md PATH]
"""
import argparse, json, subprocess, sys
from report import Table, emit

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
    ap.add_argument('--quick', action='store_true', help='the smoke world only, one run (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.repeats = 1
    from paper_distill.world import WorldConfig
    import os
    t = Table(['world', 'images', 'personas', 'generate s mean', 'min', 'max', 'runs', 'hash all images s', 'import s',
               'peak RSS MB', 'identical', 'hash'], align='lrrrrrrrrrll')
    worlds = [('smoke', WorldConfig.smoke())] if a.quick else [('default', WorldConfig()), ('smoke', WorldConfig.smoke())]
    for name, cfg in worlds:
        rs = [run(cfg.to_json()) for _ in range(a.repeats)]
        g = [r['generate_s'] for r in rs]
        t.add(name, rs[0]['images'], rs[0]['personas'], f"{sum(g)/len(g):.2f}", f"{min(g):.2f}", f"{max(g):.2f}", len(g),
              f"{rs[0]['hash_images_s']:.2f}", f"{rs[0]['import_s']:.2f}", f"{max(r['max_rss_mb'] for r in rs):.0f}",
              str(len({r['hash'] for r in rs}) == 1), rs[0]['hash'][:16])
    emit('Mini world generation (bench_world.py)', [
        f"`make_world` in fresh processes ({a.repeats} per world): wall seconds to generate, to hash every image (what the "
        "teacher's utility needs once) and to import the package; peak memory; the world's content hash (identical across "
        f"runs = bit-identical). Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}.", t], a.md)

if __name__ == '__main__': main()
