"""The one benchmark command: run every benchmark, write benchmarks/RESULTS.md and print it.

Each benchmark runs as a subprocess (a fresh interpreter: no model, thread pool or cache carried over from another
one) and writes its own Markdown section (machine, command, tables) to a temporary file through `--md PATH`; this
script then writes RESULTS.md: title, date, machine (CPU model, cores, RAM, Python, torch, numpy, BLAS from
threadpoolctl), the exact command that produced it, a summary of what ran (wall and CPU seconds per benchmark), then
every section, and prints the whole file. A benchmark that is absent (bench_search.py is written separately) is listed
as skipped; one that fails is listed as FAILED with the end of its stderr, never as a result.

    python benchmarks/report.py                      # everything at full size
    python benchmarks/report.py --quick              # every benchmark at small sizes (a sanity run of a few minutes)
    python benchmarks/report.py --only embed,teacher # some of them
    python benchmarks/report.py --out /tmp/R.md      # somewhere else
    python benchmarks/report.py --only world --keep  # rerun some, keep the other sections of the existing file

Each section sits between `<!-- bench:NAME date=... -->` and `<!-- /bench:NAME -->` markers, so `--keep` can carry the
sections of benchmarks not rerun (each still names its own date, command and load) into the new file.

The module also holds the helpers the bench scripts share (`machine`, `Table`, `section`, `product_jpegs`, `Timer`);
they import it as `from report import ...` (the scripts' folder is on sys.path when run as `python benchmarks/x.py`).
"""
from __future__ import annotations
import argparse, datetime, os, platform, resource, shlex, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# ---------------------------------------------------------------------------------------------------------------------
# shared helpers

def _cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.lower().startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError: pass
    return platform.processor() or platform.machine()

def _ram_gib() -> float | None:
    try:
        for line in Path('/proc/meminfo').read_text().splitlines():
            if line.startswith('MemTotal:'): return int(line.split()[1]) / 2**20
    except OSError: pass
    return None

def _blas() -> list[str]:
    "BLAS / OpenMP libraries loaded by numpy and torch, as threadpoolctl reports them."
    try:
        import numpy, torch  # noqa: F401  (load their BLAS libraries)
        from threadpoolctl import threadpool_info
        return sorted({f"{i.get('internal_api')} {i.get('version') or ''} ({i.get('user_api')}, {i.get('num_threads')} threads, "
                       f"{Path(i.get('filepath', '')).name})".replace('  ', ' ') for i in threadpool_info()})
    except Exception as e: return [f'unknown ({type(e).__name__}: {e})']

def machine() -> dict:
    "What the numbers were measured on."
    import numpy, torch
    try: import open_clip; oc = open_clip.__version__
    except Exception: oc = None
    try: rev = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: rev = ''
    try: dirty = bool(subprocess.run(['git', 'status', '--porcelain'], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    except OSError: dirty = False
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), ram_gib=_ram_gib(), os=f"{platform.system()} {platform.release()}",
                python=platform.python_version(), torch=torch.__version__, numpy=numpy.__version__, open_clip=oc,
                torch_threads=torch.get_num_threads(), blas=_blas(), load=os.getloadavg(),
                git=(rev + (' + uncommitted changes' if dirty else '')) if rev else None)

def machine_line(m: dict | None = None) -> str:
    "One line naming the machine, for a section."
    m = m or machine()
    ram = f"{m['ram_gib']:.1f} GiB RAM" if m['ram_gib'] else 'RAM unknown'
    return (f"{m['cpu']}, {m['cores']} cores, {ram}; Python {m['python']}, torch {m['torch']}, numpy {m['numpy']}; "
            f"load average at start {m['load'][0]:.1f}")

def command_line(argv: list[str] | None = None, drop=('--md', '--link-from')) -> str:
    "The command that ran this script (without `--md PATH`, which only says where the section went)."
    argv = list(sys.argv if argv is None else argv)
    out, skip = [], False
    for a in argv:
        if skip: skip = False; continue
        if a in drop: skip = True; continue
        if any(a.startswith(d + '=') for d in drop): continue
        out.append(a)
    script = Path(out[0])
    try: out[0] = str(script.resolve().relative_to(ROOT))
    except ValueError: pass
    return 'python ' + shlex.join(out)

class Table:
    "A table printed aligned on stdout and written as a Markdown pipe table."
    def __init__(self, header: list[str], rows: list[list] | None = None, align: str | None = None):
        self.header, self.rows = list(header), [list(r) for r in (rows or [])]
        self.align = align or ('l' + 'r' * (len(header) - 1))
    def add(self, *row): self.rows.append(list(row))
    def _cells(self): return [[str(c) for c in r] for r in self.rows]
    def text(self) -> str:
        cells = [self.header] + self._cells()
        w = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        fmt = lambda r: '  '.join(c.ljust(w[i]) if self.align[i] == 'l' else c.rjust(w[i]) for i, c in enumerate(r))
        return '\n'.join([fmt(self.header), '  '.join('-' * x for x in w)] + [fmt(r) for r in cells[1:]])
    def md(self) -> str:
        esc = lambda c: c.replace('|', '\\|')
        sep = ['---:' if a == 'r' else ':---' for a in self.align]
        return '\n'.join(['| ' + ' | '.join(map(esc, self.header)) + ' |', '| ' + ' | '.join(sep) + ' |'] +
                         ['| ' + ' | '.join(map(esc, r)) + ' |' for r in self._cells()])

def section(title: str, parts: list, command: str | None = None, m: dict | None = None) -> str:
    "A Markdown section: heading, machine, command, then `parts` (str paragraphs or Tables)."
    out = [f"## {title}", '', f"Machine: {machine_line(m)}  ", f"Command: `{command or command_line()}`", '']
    for p in parts:
        out += [p.md() if isinstance(p, Table) else str(p), '']
    return '\n'.join(out).rstrip() + '\n'

def emit(title: str, parts: list, md_path: str | None, command: str | None = None):
    "Print the section's parts to stdout and, with `md_path`, write the section as Markdown."
    print(f"== {title}")
    for p in parts: print(p.text() if isinstance(p, Table) else p); print()
    if md_path:
        Path(md_path).parent.mkdir(parents=True, exist_ok=True)
        Path(md_path).write_text(section(title, parts, command))

def median(xs): return statistics.median(xs)

class Timer:
    "Wall (perf_counter) and process CPU (all threads of this process) seconds of a block."
    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), time.process_time(); return self
    def __exit__(self, *a):
        self.wall, self.cpu = time.perf_counter() - self.w0, time.process_time() - self.c0

def product_jpegs(folder, n: int, seed: int = 0, min_px: int = 300, max_px: int = 1200, quality: int = 90) -> list[Path]:
    """Write `n` JPEG files that look like product photos (studio background gradient, a shaded object with an
    optional pattern, a soft shadow, sensor noise) with sides drawn from [min_px, max_px]; return their paths."""
    import numpy as np
    from PIL import Image
    folder = Path(folder); folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(seed), []
    for i in range(n):
        w = int(rng.integers(min_px, max_px + 1))
        h = int(np.clip(round(w / rng.choice([1.0, 0.75, 0.8, 4 / 3])), min_px, max_px))
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]; x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
        c0, c1 = rng.uniform(200, 255, 3).astype(np.float32), rng.uniform(170, 250, 3).astype(np.float32)
        gx, gy = rng.uniform(-0.5, 1, 2)
        img = c0 + (c1 - c0) * np.clip(gx * x + gy * y, 0, 1)                        # studio background
        cx, cy, rx, ry = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.18, 0.38), rng.uniform(0.2, 0.42)
        sh = ((x - cx) / (rx * 1.1)) ** 2 + ((y - cy - ry * 0.9) / (ry * 0.25)) ** 2   # soft floor shadow
        img = img * (1 - 0.25 * np.exp(-sh))
        dx, dy = (x - cx) / rx, (y - cy) / ry
        kind = i % 3
        mask = (dx ** 2 + dy ** 2 < 1) if kind == 0 else ((np.abs(dx) < 1) & (np.abs(dy) < 1)) if kind == 1 else \
               ((np.abs(dx) < 1 - 0.5 * (dy + 1) / 2) & (np.abs(dy) < 1))           # ellipse, box or trapezoid
        base = rng.uniform(20, 230, 3).astype(np.float32)
        shade = 1 - 0.35 * np.clip(0.6 * dx + 0.4 * dy, -1, 1)                       # light from the top left
        obj = base * shade
        if rng.random() < 0.5:                                                       # stripes or checks
            f = rng.uniform(6, 30); stripe = (np.sin(2 * np.pi * f * (x + (y if rng.random() < 0.5 else 0))) > 0)
            obj = np.where(stripe, obj * 0.75 + 40, obj)
        img = np.where(mask, obj, img)
        img = img + rng.normal(0, 3.0, (h, w, 3)).astype(np.float32)                 # sensor noise
        p = folder / f'product_{i:05d}.jpg'
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(p, format='JPEG', quality=quality)
        paths.append(p)
    return paths

# ---------------------------------------------------------------------------------------------------------------------
# the report

# name: (script, args at full size, args with --quick)
BENCHES = {
    'embed':      ('bench_embed.py',      [], ['--quick']),
    'teacher':    ('bench_teacher.py',    [], ['--quick']),
    'tournament': ('bench_tournament.py', [], ['--quick']),
    'breakeven':  ('bench_breakeven.py',  [], ['--quick']),
    'search':     ('bench_search.py',     [], ['--quick']),
    'distill':    ('bench_distill.py',    [], ['--quick']),
    'lockstep':   ('bench_lockstep.py',   [], ['--runs', '1,3', '--cycles', '2']),
    'store':      ('bench_store.py',      [], ['--quick']),
    'world':      ('bench_world.py',      [], ['--quick']),
    'reproduce':  ('bench_reproduce.py',  [], ['--quick']),
}

def header(m: dict, cmd: str, started: datetime.datetime, quick: bool, summary) -> str:
    ram = f"{m['ram_gib']:.1f} GiB" if m['ram_gib'] else 'unknown'
    lines = ['# Benchmark results', '',
             f"Date: {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()} (local time of the machine)  ",
             f"Command: `{cmd}`" + ('  (quick: small sizes, a sanity run, not the figures to quote)' if quick else ''), '',
             '## Machine', '',
             f"- CPU: {m['cpu']}, {m['cores']} cores (as the OS reports them); RAM {ram}; {m['os']}",
             f"- Python {m['python']}, torch {m['torch']} (default {m['torch_threads']} threads), numpy {m['numpy']}, open_clip {m['open_clip']}",
             "- BLAS / OpenMP (threadpoolctl, numpy and torch loaded): " + '; '.join(m['blas']),
             f"- git: {m['git']}" if m['git'] else '- git: unknown',
             f"- load average when the report started: {m['load'][0]:.2f} / {m['load'][1]:.2f} / {m['load'][2]:.2f} (1 / 5 / 15 min)"
             " — the machine is shared, so every benchmark interleaves its repeats and reports medians, wall and CPU time", '',
             '## What ran', '', summary.md(), '', '']
    return '\n'.join(lines)

def mark(name: str, body: str, date: str) -> str:
    "A section between markers that name its benchmark and date."
    return f"<!-- bench:{name} date={date} -->\n{body.rstrip()}\n<!-- /bench:{name} -->\n"

def kept_sections(path: Path) -> dict:
    "NAME → (date, marked section) of an existing report."
    import re
    if not path.exists(): return {}
    pat = re.compile(r'<!-- bench:(\w+) date=([^>]*?) -->\n.*?<!-- /bench:\1 -->\n', re.S)
    return {m.group(1): (m.group(2), m.group(0)) for m in pat.finditer(path.read_text())}

def run_bench(name: str, quick: bool, tmp: Path) -> tuple[str, dict]:
    "Run one benchmark; return (its Markdown section, a summary row)."
    script, full_args, quick_args = BENCHES[name]
    path = HERE / script
    if not path.exists():
        return '', dict(name=name, status=f'skipped ({script} not found)', wall=None, cpu=None)
    md = tmp / f'{name}.md'
    argv = [sys.executable, str(path)] + (quick_args if quick else full_args) + ['--md', str(md)]
    if name == 'breakeven': argv += ['--link-from', str(OUT_DIR)]
    print(f"\n######## {name}: {shlex.join(['python', str(path.relative_to(ROOT))] + argv[2:])}", flush=True)
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, stdout=sys.stdout, stderr=subprocess.PIPE, text=True)
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode or not md.exists():
        err = '\n'.join(l for l in proc.stderr.splitlines() if 'No pretrained weights loaded' not in l)[-2500:]
        print(err, file=sys.stderr)
        body = (f"## {name}: FAILED\n\n`{script}` exited with status {proc.returncode}"
                f"{'' if md.exists() else ' and wrote no section'}; the end of its stderr:\n\n```\n{err}\n```\n")
        return body, dict(name=name, status=f'FAILED (exit {proc.returncode})', wall=wall, cpu=cpu)
    return md.read_text(), dict(name=name, status='ok', wall=wall, cpu=cpu)

OUT_DIR = HERE

def main():
    global OUT_DIR
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true', help='every benchmark at small sizes (a sanity run)')
    ap.add_argument('--only', type=str, default=None, help=f"comma-separated names among {','.join(BENCHES)}")
    ap.add_argument('--out', type=str, default=str(HERE / 'RESULTS.md'), help='where to write the report')
    ap.add_argument('--keep', action='store_true', help='keep the sections of benchmarks not rerun from the existing report')
    a = ap.parse_args()
    names = list(BENCHES) if not a.only else [n.strip() for n in a.only.split(',') if n.strip()]
    bad = [n for n in names if n not in BENCHES]
    if bad: ap.error(f"unknown benchmark(s) {bad}; choose among {','.join(BENCHES)}")
    out = Path(a.out).resolve(); OUT_DIR = out.parent
    started, cmd, m = datetime.datetime.now().astimezone(), command_line(drop=()), machine()
    old = kept_sections(out) if a.keep else {}
    date = started.strftime('%Y-%m-%d %H:%M %Z').strip()
    sections, rows = {}, []
    with tempfile.TemporaryDirectory(prefix='bench_report_') as tmp:
        for n in names:
            body, row = run_bench(n, a.quick, Path(tmp))
            rows.append(row)
            if body: sections[n] = mark(n, body, date)
    for n in BENCHES:
        if n not in names and n in old:
            sections[n] = old[n][1]; rows.append(dict(name=n, status=f'kept (run {old[n][0]})', wall=None, cpu=None))
    sections = [sections[n] for n in BENCHES if n in sections]
    summary = Table(['benchmark', 'status', 'wall s', 'CPU s (its processes)'], align='llrr')
    for r in rows: summary.add(r['name'], r['status'], '-' if r['wall'] is None else f"{r['wall']:.0f}", '-' if r['cpu'] is None else f"{r['cpu']:.0f}")
    not_run = [n for n in BENCHES if n not in names and n not in old]
    text = header(m, cmd, started, a.quick, summary)
    if not_run: text += f"Not in this report: {', '.join(not_run)}.\n\n"
    text += '\n'.join(sections)
    out.parent.mkdir(parents=True, exist_ok=True); out.write_text(text)
    print('\n' + '=' * 100 + '\n' + text)
    print(f"written to {out}")
    if any(r['status'].startswith('FAILED') for r in rows): sys.exit(1)

if __name__ == '__main__': main()
