"""Image-embedding throughput of the student pipeline against the bare model forward pass.

For each model, in a fresh process (building several models in one process slows later ones), measures images/s of
  - bare:      model.visual(x) on already preprocessed tensors (torch.inference_mode), the floor of any pipeline;
  - pipeline:  Student.embed_images(PIL images) = preprocessing + batching + forward + L2 normalisation;
  - array:     Student.embed_images(uint8 array [n,H,W,3]) (the mini world's images: no PIL, direct normalisation);
  - files:     Student.embed_images(JPEG paths) of product-photo-like files of 300-1,200 px (decode + resize + crop +
               forward: what embedding a real catalog costs);
and the overhead ratio pipeline/bare time. The measurements of one model are interleaved (bare, pipeline, array,
files, bare, ...) and the median of the repeats is reported, in wall time and in process CPU time (all threads).
Models: the shipped mini student ('mini:fashion', 64 px) and ViT-B-32 with random weights (224 px; its PIL inputs are
256 px so the preprocessing resizes and crops, as for real photos).
Usage: python benchmarks/bench_embed.py [--threads 1,2] [--batch 32] [--repeats 3] [--quick] [--md PATH]
"""
import argparse, json, subprocess, sys, tempfile
from report import Table, emit, product_jpegs

CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
from PIL import Image
from paper_distill.student import Student, StudentConfig
name, n, side, threads, bs, repeats, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), json.loads(sys.argv[7])
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
fns = dict(bare=bare, pipeline=lambda: st.embed_images(pil, batch_size=bs, progress=False))
if side == st.image_size[0]: fns['array'] = lambda: st.embed_images(arr, batch_size=bs, progress=False)
if files: fns['files'] = lambda: st.embed_images(files, batch_size=bs, progress=False)
for f in fns.values(): f()                      # warm-up
res = {k: dict(wall=[], cpu=[]) for k in fns}
for _ in range(repeats):                        # interleaved: every kind sees the same load
    for k, f in fns.items():
        w, c = time.perf_counter(), time.process_time(); f()
        res[k]['wall'].append(time.perf_counter() - w); res[k]['cpu'].append(time.process_time() - c)
out = dict(model=name, images=n, n_files=len(files), input_px=side, load_s=load_s, threads=threads,
           params=sum(p.numel() for p in st.model.visual.parameters()))
for k, v in res.items(): out[k] = dict(wall=statistics.median(v['wall']), cpu=statistics.median(v['cpu']), wall_all=v['wall'])
print(json.dumps(out))
"""

def run(name, n, side, threads, bs, repeats, files=()):
    out = subprocess.run([sys.executable, '-c', CHILD, name, str(n), str(side), str(threads), str(bs), str(repeats),
                          json.dumps([str(f) for f in files])], capture_output=True, text=True)
    if out.returncode: raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=str, default='1,2', help='torch CPU thread counts, comma-separated (a fresh process each)')
    ap.add_argument('--batch', type=int, default=32, help='images per forward pass')
    ap.add_argument('--repeats', type=int, default=3, help='interleaved timed passes per measurement (median reported)')
    ap.add_argument('--mini-images', type=int, default=1024)
    ap.add_argument('--vit-images', type=int, default=64)
    ap.add_argument('--file-images', type=int, default=64, help='JPEG files of 300-1,200 px for the files rows')
    ap.add_argument('--quick', action='store_true', help="small sizes, 1 repeat, 1 thread (a sanity run)")
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.repeats, a.mini_images, a.vit_images, a.file_images, a.threads = 1, 128, 16, 8, '1'
    threads = [int(x) for x in a.threads.split(',')]
    t = Table(['model', 'params (image tower)', 'threads', 'input', 'images', 'bare img/s', 'pipeline img/s', 'overhead',
               'bare CPU ms/img', 'pipeline CPU ms/img', 'load s'], align='llrlrrrrrrr')
    with tempfile.TemporaryDirectory() as d:
        files = product_jpegs(d, a.file_images, seed=1)
        for name, n, side in (('mini:fashion', a.mini_images, 64), ('ViT-B-32', a.vit_images, 256)):
            for th in threads:
                r = run(name, n, side, th, a.batch, a.repeats, files)
                b, p = r['bare'], r['pipeline']
                t.add(name, f"{r['params']:,d}", th, f"PIL {side} px", n, f"{n / b['wall']:.1f}", f"{n / p['wall']:.1f}",
                      f"{p['wall'] / b['wall']:.2f}x", f"{b['cpu'] / n * 1e3:.2f}", f"{p['cpu'] / n * 1e3:.2f}", f"{r['load_s']:.1f}")
                if 'array' in r:
                    q = r['array']
                    t.add(name, '', th, f"uint8 array {side} px", n, '', f"{n / q['wall']:.1f}", f"{q['wall'] / b['wall']:.2f}x", '',
                          f"{q['cpu'] / n * 1e3:.2f}", '')
                q = r['files']
                nf = r['n_files']
                t.add(name, '', th, 'JPEG files 300-1200 px', nf, '', f"{nf / q['wall']:.1f}",
                      f"{(q['wall'] / nf) / (b['wall'] / n):.2f}x", '', f"{q['cpu'] / nf * 1e3:.2f}", '')
    emit('Student image-embedding throughput (bench_embed.py)', [
        f"Images per second through `Student.embed_images` (preprocessing + batches of {a.batch} + forward + L2 norm) "
        f"against the bare forward pass `model.visual(x)` on preprocessed tensors; torch {a.threads} thread(s); each model and "
        f"thread count in a fresh process; median of {a.repeats} interleaved repeats after a warm-up. CPU ms/img = process CPU time (all "
        "threads) per image, so CPU > wall when both threads work. 'overhead' = pipeline time / bare time per image. "
        "ViT-B-32 has random weights (no download); the JPEG rows decode product-photo-like files of 300-1,200 px "
        "(what embedding a real catalog costs).", t], a.md)

if __name__ == '__main__': main()
