"""Image-embedding throughput of the student pipeline against the bare model forward pass.

For each model, in a fresh process (building several models in one process slows later ones), prints images/s of
  - bare:      model.visual(x) on already preprocessed tensors (torch.inference_mode), the floor of any pipeline;
  - pipeline:  Student.embed_images(PIL images) = preprocessing + batching + forward + L2 normalisation;
  - array:     Student.embed_images(uint8 array [n,H,W,3]) (the mini world's images: no PIL, direct normalisation);
and the overhead ratio bare/pipeline time. Models: the shipped mini student ('mini:fashion', 64 px) and ViT-B-32 with
random weights (224 px; its PIL inputs are 256 px so the preprocessing resizes and crops, as for real photos).
Usage: python benchmarks/bench_embed.py [--threads 2] [--batch 32] [--repeats 3]
"""
import argparse, json, subprocess, sys

CHILD = r"""
import json, sys, time
import numpy as np, torch
from PIL import Image
from paper_distill.student import Student, StudentConfig
name, n, side, threads, bs, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
t0 = time.perf_counter()
st = Student(StudentConfig(model=name))
load_s = time.perf_counter() - t0
arr = np.random.default_rng(0).integers(0, 256, (n, side, side, 3), dtype=np.uint8)
pil = [Image.fromarray(a) for a in arr]
x = torch.cat([st.pixels(pil[i:i+bs]) for i in range(0, n, bs)])
def bare():
    with torch.inference_mode():
        for i in range(0, n, bs): st.model.visual(x[i:i+bs])
def pipe(): st.embed_images(pil, batch_size=bs, progress=False)
def pipe_arr(): st.embed_images(arr, batch_size=bs, progress=False)
def best(f):
    f()                                    # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return min(ts)
res = dict(model=name, images=n, input_px=side, load_s=load_s, params=sum(p.numel() for p in st.model.visual.parameters()))
res['bare_s'], res['pipeline_s'] = best(bare), best(pipe)
if side == st.image_size[0]: res['array_s'] = best(pipe_arr)
print(json.dumps(res))
"""

def run(name, n, side, threads, bs, repeats):
    out = subprocess.run([sys.executable, '-c', CHILD, name, str(n), str(side), str(threads), str(bs), str(repeats)],
                         capture_output=True, text=True)
    if out.returncode: raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    ap.add_argument('--batch', type=int, default=32, help='images per forward pass')
    ap.add_argument('--repeats', type=int, default=3, help='timed passes per measurement (best is reported)')
    ap.add_argument('--mini-images', type=int, default=2048)
    ap.add_argument('--vit-images', type=int, default=64)
    a = ap.parse_args()
    print(f"threads={a.threads} batch={a.batch} best of {a.repeats}; each model in a fresh process")
    print(f"{'model':14s} {'params':>10s} {'images':>6s} {'bare img/s':>11s} {'pipeline img/s':>15s} {'overhead':>9s} {'array img/s':>12s}")
    for name, n, side in (('mini:fashion', a.mini_images, 64), ('ViT-B-32', a.vit_images, 256)):
        r = run(name, n, side, a.threads, a.batch, a.repeats)
        arr = f"{n / r['array_s']:12.0f}" if 'array_s' in r else f"{'-':>12s}"
        print(f"{name:14s} {r['params']:10,d} {n:6d} {n / r['bare_s']:11.1f} {n / r['pipeline_s']:15.1f} "
              f"{r['pipeline_s'] / r['bare_s']:8.2f}x {arr}")

if __name__ == '__main__': main()
