"""Teacher store throughput: puts and gets in one process, puts from several processes at once, snapshot export and
import. Prints measured figures; asserts nothing about time.

    python benchmarks/bench_store.py [--n 5000] [--procs 4] [--quick] [--md PATH]
"""
import argparse, shutil, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
from paper_distill.records import StoreRequest
from paper_distill.store import TeacherStore
from report import Table, emit

def req(w, i):
    return StoreRequest('simulated', 'sim-1', 'rank', 'rank-v1', 'h', f'writer {w}: a persona sentence number {i}.',
                        tuple(f'{j:064x}' for j in range(i, i + 5)), {'temperature': 0.0, 'seed': w})

WRITER = '''
import sys, time
from paper_distill.records import StoreRequest
from paper_distill.store import TeacherStore
w, n = int(sys.argv[2]), int(sys.argv[3])
def req(w, i):
    return StoreRequest('simulated', 'sim-1', 'rank', 'rank-v1', 'h', f'writer {w}: a persona sentence number {i}.',
                        tuple(f'{j:064x}' for j in range(i, i + 5)), {'temperature': 0.0, 'seed': w})
st = TeacherStore(sys.argv[1])
print('ready', flush=True); sys.stdin.readline()          # start all writers together
t = time.perf_counter()
for i in range(n): st.put(req(w, i), raw_text='3,1,5,2,4', parsed=[3, 1, 5, 2, 4], model='sim-1', usage={'input_tokens': 1300, 'output_tokens': 9}, latency_s=0.5)
print(time.perf_counter() - t, flush=True)
'''

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=5000, help='records per measurement (per process for the concurrent one)')
    ap.add_argument('--procs', type=int, default=4, help='concurrent writer processes')
    ap.add_argument('--quick', action='store_true', help='500 records, 2 processes (a sanity run)')
    ap.add_argument('--md', type=str, default=None, help='also write the section as Markdown to this file')
    a = ap.parse_args()
    if a.quick: a.n, a.procs = 500, 2
    tab = Table(['operation', 'records/s', 'detail'], align='lrl')
    tmp = Path(tempfile.mkdtemp(prefix='bench_store_'))
    st = TeacherStore(tmp/'one')
    reqs = [req(0, i) for i in range(a.n)]
    t = time.perf_counter()
    for r in reqs: st.put(r, raw_text='3,1,5,2,4', parsed=[3, 1, 5, 2, 4], model='sim-1', usage={'input_tokens': 1300, 'output_tokens': 9}, latency_s=0.5)
    dt_put = time.perf_counter() - t
    keys = [r.key for r in reqs]
    t = time.perf_counter()
    for k in keys: st.get(k)
    dt_get = time.perf_counter() - t
    tab.add('put, one process, one transaction per record', f"{a.n / dt_put:,.0f}", f"{a.n} records, {dt_put:.2f} s")
    tab.add('get, one process', f"{a.n / dt_get:,.0f}", '')
    for name in ['snap.jsonl', 'snap.jsonl.gz']:
        t = time.perf_counter(); st.export_jsonl(tmp/name); dt_e = time.perf_counter() - t
        with TeacherStore(tmp/f'imp-{name}') as s2:
            t = time.perf_counter(); s2.import_jsonl(tmp/name); dt_i = time.perf_counter() - t
        size = (tmp/name).stat().st_size
        tab.add(f'export {name}', f"{a.n / dt_e:,.0f}", f"{size / a.n:,.0f} bytes/record")
        tab.add(f'import {name} (validate all, one transaction)', f"{a.n / dt_i:,.0f}", '')
    st.close()

    procs = [subprocess.Popen([sys.executable, '-c', textwrap.dedent(WRITER), str(tmp/'multi'), str(w), str(a.n)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for w in range(a.procs)]
    for p in procs: assert p.stdout.readline().strip() == 'ready'
    t = time.perf_counter()
    for p in procs: p.stdin.write('go\n'); p.stdin.flush()
    per = [float(p.stdout.readline()) for p in procs]
    wall = time.perf_counter() - t
    for p in procs: p.wait()
    with TeacherStore(tmp/'multi', readonly=True) as m: n_all = len(m)
    tab.add(f'put, {a.procs} processes at once (in total)', f"{n_all / wall:,.0f}",
          f"{n_all:,} records in {wall:.2f} s, per process {min(per):.2f}-{max(per):.2f} s; read back {n_all} of {a.procs * a.n}")
    shutil.rmtree(tmp)
    emit('Teacher store throughput (bench_store.py)', [
        f"`TeacherStore` puts and gets of {a.n:,d} ranking records in one process, snapshot export and import, and puts from "
        f"{a.procs} processes at once (one run each; wall time).", tab], a.md)

if __name__ == '__main__': main()
