"""Image-embedding throughput of the student from photo files against pre-decoded images, before and after DataLoader workers.

The benchmark writes N product-photo-like JPEG files of 600-1,200 px (`report.product_jpegs`) and embeds the same photos
with `Student.embed_images` given as
  - files:            the JPEG paths (read, EXIF, reduced-scale JPEG decoding, pad to a white square, resize, forward);
  - decoded photos:   the same photos already decoded (PIL RGB at full size: pad + resize + forward remain);
  - at model size:    the same photos already padded and resized (uint8 array [n, H, W, 3], as the mini world's
                      images come: normalisation + forward only, the ceiling of any pipeline);
each with num_workers=0 (everything in the embedding process: "before") and num_workers=2 (reading and preprocessing
in two DataLoader worker processes: "after"), plus the path of the code before this change: files decoded in full on
the main thread and cropped by open_clip (`fit='crop'`). Every (model, torch threads) runs in a fresh process; its
measurements are interleaved (every kind once, then again) and the median of the repeats is reported, wall time and CPU
time of all processes (the embedding process and its workers, from getrusage). Models: the shipped mini student
('mini:fashion', 64 px) and ViT-B-32 with random weights (224 px; no download).
Usage: python benchmarks/bench_embed.py [--threads 1,2] [--workers 2] [--batch 32] [--repeats 3] [--quick] [--md PATH]
"""
import argparse, json, subprocess, sys, tempfile
from report import Table, emit, product_jpegs

CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
from PIL import Image
from paper_distill.student import Student, StudentConfig
from paper_distill.data import pad_to_square
name, threads, bs, repeats, workers, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), json.loads(sys.argv[6])
torch.set_num_threads(threads)
st = Student(StudentConfig(model=name))
old = Student(StudentConfig(model=name, fit='crop'), st.model, st.preprocess, st.tokenizer)
decoded = [Image.open(f).convert('RGB') for f in files]
H, W = st.image_size
small = np.stack([np.asarray(pad_to_square(im).resize((W, H), Image.BICUBIC)) for im in decoded])   # padded and resized already
emb = lambda imgs, nw, s=st: s.embed_images(imgs, batch_size=bs, progress=False, num_workers=nw)
kinds = {('files', 0): lambda: emb(files, 0), ('files', workers): lambda: emb(files, workers),
         ('decoded photos', 0): lambda: emb(decoded, 0), ('decoded photos', workers): lambda: emb(decoded, workers),
         ('at model size', 0): lambda: emb(small, 0),
         ('files, full decode + crop (code before)', 0): lambda: emb([Image.open(f).convert('RGB') for f in files], 0, old)}
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
same = torch.equal(emb(files, 0), emb(files, workers))                      # warm-up, and the workers change nothing
for f in kinds.values(): f()
res = {k: dict(wall=[], cpu=[]) for k in kinds}
for _ in range(repeats):                                                    # interleaved: every kind sees the same load
    for k, f in kinds.items():
        w, c = time.perf_counter(), cpu(); f()
        res[k]['wall'].append(time.perf_counter() - w); res[k]['cpu'].append(cpu() - c)
out = dict(model=name, n=len(files), threads=threads, side=H, same=same, rows=[])
for (kind, nw), v in res.items():
    out['rows'].append(dict(kind=kind, workers=nw, wall=statistics.median(v['wall']), cpu=statistics.median(v['cpu']), wall_all=v['wall']))
print(json.dumps(out))
"""

def run(name, threads, bs, repeats, workers, files):
    out = subprocess.run([sys.executable, '-c', CHILD, name, str(threads), str(bs), str(repeats), str(workers),
                          json.dumps([str(f) for f in files])], capture_output=True, text=True)
    if out.returncode: raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=str, default='1,2', help='torch CPU thread counts, comma-separated (a fresh process each)')
    ap.add_argument('--workers', type=int, default=2, help="DataLoader workers of the 'after' rows")
    ap.add_argument('--batch', type=int, default=32, help='images per forward pass')
    ap.add_argument('--repeats', type=int, default=3, help='interleaved timed passes per measurement (median reported)')
    ap.add_argument('--mini-images', type=int, default=1024, help='photos embedded by the mini student')
    ap.add_argument('--vit-images', type=int, default=64, help='photos embedded by ViT-B-32')
    ap.add_argument('--quick', action='store_true', help='small sizes, 1 repeat, 1 thread (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.repeats, a.mini_images, a.vit_images, a.threads = 1, 64, 32, '1'
    threads = [int(x) for x in a.threads.split(',')]
    t = Table(['model', 'threads', 'input', 'workers', 'images', 'img/s', 'wall ms/img', 'CPU ms/img (all processes)',
               'vs at model size', 'vs decoded photos (0 workers)'], align='lrllrrrrrr')
    same = []
    with tempfile.TemporaryDirectory() as d:
        files = product_jpegs(d, max(a.mini_images, a.vit_images), seed=1, min_px=600, max_px=1200)
        for name, n in (('mini:fashion', a.mini_images), ('ViT-B-32', a.vit_images)):
            for th in threads:
                r = run(name, th, a.batch, a.repeats, a.workers, files[:n])
                same.append(r['same'])
                rows = {(x['kind'], x['workers']): x for x in r['rows']}
                ceil_, dec0 = rows[('at model size', 0)]['wall'], rows[('decoded photos', 0)]['wall']
                for (kind, nw), x in rows.items():
                    t.add(name, th, kind if kind != 'at model size' else f"at model size ({r['side']} px array)", nw, n,
                          f"{n / x['wall']:.1f}", f"{x['wall'] / n * 1e3:.2f}", f"{x['cpu'] / n * 1e3:.2f}",
                          f"{ceil_ / x['wall']:.0%}", f"{dec0 / x['wall']:.0%}")
    emit('Student image-embedding throughput: files vs pre-decoded images (bench_embed.py)', [
        f"Images per second through `Student.embed_images` (batches of {a.batch}) of the same product-photo-like JPEGs of "
        "600-1,200 px given as files, as decoded photos (PIL, full size) and already at the model's size (uint8 array: "
        f"normalisation + forward only); workers = `num_workers` (0: all in the embedding process, before; {a.workers}: "
        "DataLoader worker processes read and preprocess, after); 'code before' = files decoded in full on the main "
        "thread and centre-cropped, as embedding worked before `fit` and the workers. Each model and torch thread count "
        f"in a fresh process; median of {a.repeats} interleaved repeats after a warm-up (the warm-up starts workers "
        "once; every timed call with workers starts its own). CPU = user + system time of the embedding process and its "
        "workers, so CPU > wall when several cores work. 'vs' columns: speed relative to the at-model-size and the "
        "decoded-photos rows of the same model and threads. ViT-B-32 has random weights (no download). Embeddings with "
        f"workers equal those without, bit for bit: {all(same)}.", t], a.md)

if __name__ == '__main__': main()
