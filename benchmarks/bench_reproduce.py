"""Time `paper_distill reproduce` as a user runs it: cold (empty home folder: no imported store, no run cache, no
embedding cache) and then warm (everything found in the run cache), each as one whole process under /usr/bin/time -v.

Reports wall time, user and system CPU seconds, memory three ways: the largest single process's peak RSS (what
/usr/bin/time -v calls "Maximum resident set size": the parent or one worker), the peak of the summed PSS of the whole
process tree (parent + forked workers; PSS divides each shared page among the processes sharing it, so the sum is the
physical memory the run holds) and the peak of the summed RSS (which counts the pages the workers share with the
parent once per process), sampled every 0.2 s from /proc; the bytes the run wrote (its home folder and output folder);
and checks that the warm run's tables and figures are byte-identical to the cold run's.

    python benchmarks/bench_reproduce.py                   # the mini profile (about 5 minutes cold)
    python benchmarks/bench_reproduce.py --profile smoke   # seconds
"""
import argparse, hashlib, os, re, shutil, subprocess, sys, tempfile, threading, time
from pathlib import Path
from report import Table, emit


def tree(pid: int) -> list:
    "A process and all its descendants (pids)."
    kids = {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            stat = (d/'stat').read_text()
            kids.setdefault(int(stat.rsplit(')', 1)[1].split()[1]), []).append(int(d.name))
        except (OSError, ValueError, IndexError): pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop(); out.append(p); todo += kids.get(p, [])
    return out


def mem(pid: int) -> tuple:
    "(RSS, PSS) of one process in bytes (PSS: shared pages divided among the processes sharing them)."
    rss = pss = 0
    try:
        for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
            if line.startswith('Rss:'): rss = int(line.split()[1]) * 1024
            elif line.startswith('Pss:'): pss = int(line.split()[1]) * 1024
    except OSError: pass
    return rss, pss


def run(args: list, env: dict) -> dict:
    "Run one command under /usr/bin/time -v, sampling its process tree's RSS; return the figures."
    p = subprocess.Popen(['/usr/bin/time', '-v', *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = {'rss': 0, 'pss': 0, 'proc': 0}, threading.Event()
    def sample():
        while not stop.is_set():
            ms = [mem(q) for q in tree(p.pid)]
            peak['rss'] = max(peak['rss'], sum(m[0] for m in ms)); peak['pss'] = max(peak['pss'], sum(m[1] for m in ms))
            peak['proc'] = max([peak['proc']] + [m[0] for m in ms])
            time.sleep(0.2)
    th = threading.Thread(target=sample, daemon=True); th.start()
    out, err = p.communicate(); stop.set(); th.join()
    if p.returncode != 0: raise SystemExit(f"{' '.join(map(str, args))} failed ({p.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
    get = lambda pat: re.search(pat, err).group(1)
    wall = get(r'Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)')
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall.split(':'))))
    return dict(wall_s=secs, user_s=float(get(r'User time \(seconds\): (\S+)')), sys_s=float(get(r'System time \(seconds\): (\S+)')),
                max_rss_mb=int(get(r'Maximum resident set size \(kbytes\): (\d+)')) / 1024, tree_rss_mb=peak['rss'] / 2**20, tree_pss_mb=peak['pss'] / 2**20,
                fs_out_mb=int(get(r'File system outputs: (\d+)')) * 512 / 2**20, stdout=out)


def du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in Path(path).rglob('*') if f.is_file()) / 2**20


def digests(folder: Path) -> dict:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(Path(folder).iterdir()) if f.is_file()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--profile', default='mini', help='smoke | mini')
    ap.add_argument('--workers', type=int, default=2, help='worker processes (the command default: 2)')
    ap.add_argument('--keep', type=str, default=None, help='keep the home and output folders here (default: a temporary folder)')
    ap.add_argument('--quick', action='store_true', help='the smoke profile (seconds)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.profile = 'smoke'
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix='bench_reproduce_'))
    shutil.rmtree(root/'home', ignore_errors=True); shutil.rmtree(root/'cold', ignore_errors=True); shutil.rmtree(root/'warm', ignore_errors=True)
    env = {**os.environ, 'PAPER_DISTILL_HOME': str(root/'home'), 'MPLBACKEND': 'Agg'}
    exe = shutil.which('paper_distill') or sys.exit('paper_distill is not on PATH: pip install the package first')
    teacher = ['--teacher', 'simulated'] if a.profile == 'smoke' else []   # smoke ships no store: its teacher fills one
    rows = {}
    for name in ('cold', 'warm'):
        rows[name] = run([exe, 'reproduce', '--profile', a.profile, *teacher, '--workers', str(a.workers), '--out', str(root/name), '--quiet'], env)
        rows[name]['written_mb'] = du_mb(root/'home') + du_mb(root/name)
    same = digests(root/'cold') == digests(root/'warm')
    t = Table(['run', 'wall s', 'user CPU s', 'system CPU s', 'largest process peak RSS MB (time -v)', 'all processes peak PSS MB',
               'all processes peak RSS MB (shared pages counted per process)', 'written to disk MB (file system outputs)',
               'home + output folder MB'], align='lrrrrrrrr')
    for name, r in rows.items():
        t.add(name, f"{r['wall_s']:.1f}", f"{r['user_s']:.1f}", f"{r['sys_s']:.1f}", f"{r['max_rss_mb']:.0f}", f"{r['tree_pss_mb']:.0f}",
              f"{r['tree_rss_mb']:.0f}", f"{r['fs_out_mb']:.0f}", f"{r['written_mb']:.0f}")
    summary = '\n'.join(l for l in rows['cold']['stdout'].splitlines() if l.startswith(('profile', 'teacher', 'store', 'the experiments')))
    parts = [f"`paper_distill reproduce --profile {a.profile} {' '.join(teacher)} --workers {a.workers}`, cold (empty "
             "$PAPER_DISTILL_HOME: no run cache, no embedding or feature cache; the shipped store served as it is, every pair trained) then warm (the same "
             "command again: every pair from the run cache, only drawing). Targets (mini): cold under 5 minutes, warm under "
             "30 seconds, under 2 GB. Torch runs one thread per worker process; the BLAS is the one `report.py` lists.", t,
             f"Warm artefacts byte-identical to cold: {'yes' if same else 'NO'}.", "Cold run's summary:\n\n```\n" + summary + "\n```"]
    emit(f'reproduce ({a.profile} profile)', parts, a.md)
    if not same: sys.exit(1)


if __name__ == '__main__':
    main()
