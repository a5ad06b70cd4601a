"""Teacher store under real processes: concurrent writers, writers killed with SIGKILL (during puts and during an
import), byte-identical snapshot round trips, corrupt, cut and invalid snapshots, stores holding pickles or rows that
name files, altered records, a store read while another process creates it, read-only media and a full disk."""
import errno, gzip, hashlib, json, logging, os, pickle, random, re, shlex, shutil, signal, sqlite3, subprocess, sys, textwrap, threading, time, zlib
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor
import diskcache, pytest
from paper_distill.core import canonical_json
from paper_distill.records import STORE_SCHEMA_VERSION, StoreRequest, RecordError, validate_record, make_record, write_jsonl
from paper_distill.prompts import is_ranking_of
from paper_distill.store import TeacherStore, UnsafeStoreError

# The requests and answers the child processes write are a function of (writer, index), so the parent can rebuild
# exactly what every committed record must contain.
CHILD_HELPERS = '''
import sys
from paper_distill.records import StoreRequest
from paper_distill.store import TeacherStore
def req(w, i):
    return StoreRequest("simulated", "sim-1", "rank", "rank-v1", "h", f"writer {w} persona {i} ✓", (f"img{i}", f"img{i+1}", f"img{i+2}"), {"temperature": 0.0, "seed": w})
def answer(w, i): return [(w + i) % 3 + 1, (w + i + 1) % 3 + 1, (w + i + 2) % 3 + 1]
'''

def req(w, i):
    return StoreRequest("simulated", "sim-1", "rank", "rank-v1", "h", f"writer {w} persona {i} ✓", (f"img{i}", f"img{i+1}", f"img{i+2}"), {"temperature": 0.0, "seed": w})
def answer(w, i): return [(w + i) % 3 + 1, (w + i + 1) % 3 + 1, (w + i + 2) % 3 + 1]

def _py(code, *args, **kw):
    "Start `python -c code args` (a fresh interpreter importing the installed package)."
    return subprocess.Popen([sys.executable, '-c', CHILD_HELPERS + textwrap.dedent(code), *map(str, args)], **kw)

def _check_record(rec, w, i):
    validate_record(rec)
    assert rec['key'] == req(w, i).key
    assert rec['parsed'] == answer(w, i) and rec['raw_text'] == ','.join(map(str, answer(w, i)))
    assert rec['request'] == req(w, i).to_dict() and rec['model'] == 'sim-1'

def _integrity_ok(store_dir):
    con = sqlite3.connect(str(Path(store_dir)/'cache.db'))
    try: return con.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    finally: con.close()

WRITER = '''
w, n = int(sys.argv[2]), int(sys.argv[3])
with TeacherStore(sys.argv[1]) as st:
    for i in range(n):
        a = answer(w, i)
        st.put(req(w, i), raw_text=",".join(map(str, a)), parsed=a, model="sim-1", usage={"input_tokens": 10 + i, "output_tokens": 3}, latency_s=0.001 * i)
'''

def test_four_processes_write_2000_records(tmp_path):
    "4 processes write 500 distinct records each into one store at the same time: exactly 2,000 readable records."
    d = tmp_path/'store'
    procs = [_py(WRITER, d, w, 500, stderr=subprocess.PIPE) for w in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    with TeacherStore(d, readonly=True) as st:
        assert len(st) == 2000
        assert st.keys() == sorted(req(w, i).key for w in range(4) for i in range(500))
        for w in range(4):
            for i in range(500): _check_record(st.get(req(w, i)), w, i)
        s = st.stats()
        assert s['records'].sum() == 2000 and s['input_tokens'].sum() == 4 * sum(10 + i for i in range(500))
    assert _integrity_ok(d)

def test_same_keys_from_many_processes_keep_one_whole_record(tmp_path):
    "3 processes put the SAME 100 requests with different answers: one record per key, each a whole record of one writer."
    d = tmp_path/'store'
    code = '''
    import json
    w = int(sys.argv[2])
    with TeacherStore(sys.argv[1]) as st:
        for i in range(100):
            r = st.put(req(0, i), raw_text=f"writer {w}", parsed=[1, 2, 3], model="sim-1", latency_s=float(w))
            print(json.dumps(r), flush=True)               # what put returned: the record the store keeps
    '''
    procs = [_py(code, d, w, stdout=subprocess.PIPE, text=True) for w in range(3)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    with TeacherStore(d, readonly=True) as st:
        assert len(st) == 100
        winners = set()
        for i in range(100):
            rec = validate_record(st.get(req(0, i)))
            w = int(rec['raw_text'].split()[1])
            assert rec['latency_s'] == w                   # raw text and latency come from the same writer
            winners.add(w)
            for out in outs: assert json.loads(out.splitlines()[i]) == rec   # every writer's put returned the stored record
    assert winners <= {0, 1, 2}

KILLED_WRITER = '''
w, start = int(sys.argv[2]), int(sys.argv[3])
with TeacherStore(sys.argv[1]) as st:
    for i in range(start, start + 100000):
        a = answer(w, i)
        st.put(req(w, i), raw_text=",".join(map(str, a)), parsed=a, model="sim-1")
        sys.stdout.write(f"{i}\\n"); sys.stdout.flush()     # reported only after the commit returned
'''

def test_writer_killed_with_sigkill_loses_no_committed_record(tmp_path):
    "Writers killed with SIGKILL at random instants: the store opens, and every record reported committed reads back intact."
    d, rng = tmp_path/'store', random.Random(0)
    committed, start = [], 0
    for rnd in range(4):
        err = open(tmp_path/f'err{rnd}', 'wb')
        p = _py(KILLED_WRITER, d, 7, start, stdout=subprocess.PIPE, stderr=err)
        first = p.stdout.readline()                      # the writer is up and committing
        assert first.strip(), (tmp_path/f'err{rnd}').read_text()
        time.sleep(rng.uniform(0.0, 0.5))
        os.kill(p.pid, signal.SIGKILL)
        out = p.stdout.read()                            # the same buffered reader: nothing read ahead is lost
        p.wait(timeout=60); err.close()
        assert p.returncode == -signal.SIGKILL
        lines = (first + out).decode().split('\n')
        got = [int(x) for x in lines[:-1]]               # complete lines only
        assert got == list(range(start, start + len(got)))
        committed += got
        start = committed[-1] + 1
        with TeacherStore(d) as st:                       # opens fine after each kill
            for i in got: _check_record(st.get(req(7, i)), 7, i)
            assert len(st) >= len(committed)              # a put may have committed just before its report
    assert len(committed) > 4
    with TeacherStore(d, readonly=True) as st:
        for i in committed: _check_record(st.get(req(7, i)), 7, i)
        for k, rec in st.items(): validate_record(rec)
    assert _integrity_ok(d)

def test_import_killed_with_sigkill_is_all_or_nothing(tmp_path):
    "An import killed with SIGKILL at several points of its run leaves the store with none or all of the snapshot."
    n = 5000
    recs = [make_record(req(1, i), ",".join(map(str, answer(1, i))), answer(1, i), "sim-1") for i in range(n)]
    snap = tmp_path/'snap.jsonl'; assert write_jsonl(sorted(recs, key=lambda r: r['key']), snap) == n
    code = '''
    import time
    st = TeacherStore(sys.argv[1]); print("open", flush=True); t = time.time()
    st.import_jsonl(sys.argv[2]); print(time.time() - t, flush=True)
    '''
    p = _py(code, tmp_path/'timing', snap, stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=300); assert p.returncode == 0
    duration = float(out.split()[1])
    killed = 0
    for j, frac in enumerate([0.3, 0.6, 0.8, 0.9, 0.97]):
        d = tmp_path/f'k{j}'
        p = _py(code, d, snap, stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == 'open'
        time.sleep(duration * frac)
        os.kill(p.pid, signal.SIGKILL); p.communicate(timeout=60)
        killed += p.returncode == -signal.SIGKILL
        with TeacherStore(d) as st: assert len(st) in (0, n), f"import killed at {frac:.0%} left {len(st)} of {n} records"
        assert _integrity_ok(d)
    assert killed >= 3                                   # most kills really landed during the import

def _varied_store(path, n=120):
    "A store with varied records: unicode, floats, nested answers, absent usage and latency, all three tasks."
    st = TeacherStore(path)
    for i in range(n):
        task = ('rank', 'pair', 'caption')[i % 3]
        r = StoreRequest('gemini' if i % 2 else 'simulated', 'gemini-2.5-flash' if i % 2 else 'sim-1', task, f'{task}-v1',
                         f'th{i % 4}', '' if task == 'caption' else f'Persona {i}: naïve “quotes” \\ / 東京 \n tab\t',
                         tuple(f'{j:064x}' for j in range(i, i + (1 if task == 'caption' else 2 if task == 'pair' else 5))),
                         {'temperature': [0.0, 0.7, 1e-9][i % 3], 'seed': i, 'nested': {'b': [1.5, -2, None], 'a': True}})
        parsed = {'rank': [5, 3, 1, 2, 4], 'pair': i % 2, 'caption': f'a red dress ✓ {i}\n"quoted" 東京'}[task]
        st.put(r, raw_text=f'answer {i}\n"quoted" ✓', parsed=parsed, model=r.model, usage=None if i % 5 == 0 else {'input_tokens': 1290 + i, 'output_tokens': i},
               latency_s=None if i % 7 == 0 else i / 3)
    return st

@pytest.mark.parametrize('name', ['snap.jsonl', 'snap.jsonl.gz'])
def test_export_import_export_is_byte_identical(tmp_path, name):
    "export → import into a fresh store → export gives the same bytes (plain and gzip); lines are sorted canonical JSON."
    with _varied_store(tmp_path/'a') as a:
        assert a.export_jsonl(tmp_path/name) == 120
        a.export_jsonl(tmp_path/('again-' + name))
    b1 = (tmp_path/name).read_bytes()
    assert (tmp_path/('again-' + name)).read_bytes() == b1     # same store, same bytes
    with TeacherStore(tmp_path/'b') as b:
        assert b.import_jsonl(tmp_path/name) == 120
        b.export_jsonl(tmp_path/('b-' + name))
    assert (tmp_path/('b-' + name)).read_bytes() == b1
    text = gzip.decompress(b1) if name.endswith('.gz') else b1
    if name.endswith('.gz'): assert b1[4:8] == b'\0\0\0\0' and b1[3] & 0x08 == 0   # mtime 0, no file name in header
    lines = text.decode('utf-8').split('\n')
    assert lines[-1] == '' and len(lines) == 123                   # a header, 120 records, a closing line
    assert json.loads(lines[0]) == {'snapshot': {'format': 'paper_distill.teacher_store.jsonl', 'version': 2}}
    assert json.loads(lines[-2])['snapshot_end']['records'] == 120
    lines = lines[1:-2]
    recs = [json.loads(l) for l in lines]
    assert [r['key'] for r in recs] == sorted(r['key'] for r in recs)
    assert all(canonical_json(r) == l for r, l in zip(recs, lines))

def test_corrupt_snapshot_line_is_refused_and_nothing_imported(tmp_path):
    "A corrupt line names its line number and nothing is imported; a half-written (truncated) file also imports nothing."
    with _varied_store(tmp_path/'a', n=30) as a: a.export_jsonl(tmp_path/'s.jsonl'); a.export_jsonl(tmp_path/'s.jsonl.gz')
    lines = (tmp_path/'s.jsonl').read_text(encoding='utf-8').split('\n')[:-1]
    corrupt = lines[:16] + [lines[16][:50] + '#' + lines[16][51:]] + lines[17:]
    (tmp_path/'c.jsonl').write_text('\n'.join(corrupt) + '\n', encoding='utf-8')
    full = (tmp_path/'s.jsonl').read_bytes()
    (tmp_path/'half.jsonl').write_bytes(full[:len(full) // 2])
    gz = (tmp_path/'s.jsonl.gz').read_bytes()
    (tmp_path/'half.jsonl.gz').write_bytes(gz[:len(gz) // 2])
    with TeacherStore(tmp_path/'b') as b:
        with pytest.raises(RecordError, match=r'c\.jsonl:17: '): b.import_jsonl(tmp_path/'c.jsonl')
        with pytest.raises(RecordError, match=r'half\.jsonl:\d+: .*nothing was imported'): b.import_jsonl(tmp_path/'half.jsonl')
        with pytest.raises(RecordError, match='corrupt or truncated gzip'): b.import_jsonl(tmp_path/'half.jsonl.gz')
        assert len(b) == 0
        assert b.import_jsonl(tmp_path/'s.jsonl') == 30       # the intact snapshot still imports whole

def test_invalid_records_are_refused(tmp_path):
    "put refuses what the record schema or the validator refuses; import refuses an invalid record by line; nothing is written."
    with TeacherStore(tmp_path/'s') as st:
        r = req(0, 0)
        with pytest.raises(RecordError, match='not a permutation of 1..3'):
            st.put(r, raw_text='1,1,2', parsed=[1, 1, 2], model='sim-1', validator=is_ranking_of)
        with pytest.raises(RecordError, match="field 'usage'"): st.put(r, raw_text='x', parsed=[1, 2, 3], model='sim-1', usage={'input_tokens': 1.5})
        with pytest.raises(RecordError, match="field 'latency_s'"): st.put(r, raw_text='x', parsed=[1, 2, 3], model='sim-1', latency_s=float('nan'))
        with pytest.raises(RecordError, match="field 'parsed'"): st.put(r, raw_text='x', parsed=None, model='sim-1')
        with pytest.raises(RecordError, match="field 'model'"): st.put(r, raw_text='x', parsed=[1, 2, 3], model='')
        with pytest.raises(RecordError, match='refused by validator'): st.put(r, raw_text='x', parsed=[1, 2, 3], model='sim-1', validator=lambda rec: False)
        assert len(st) == 0 and r not in st
        good = st.put(r, raw_text='1,2,3', parsed=[1, 2, 3], model='sim-1', validator=is_ranking_of)
        st.export_jsonl(tmp_path/'ok.jsonl')
    for i, (field, value, msg) in enumerate([('created_at', '2026-01-01T00:00:00+01:00', 'ISO 8601 UTC'), ('schema_version', STORE_SCHEMA_VERSION + 1, 'newer paper_distill'),
                                              ('parsed', [3, 2, 1], None), ('extra', 1, 'unknown field')]):
        rec = {**good, field: value}
        snap = tmp_path/f'bad{i}.jsonl'
        other_rec = validate_record({**good, 'key': req(0, 1).key, 'request': req(0, 1).to_dict()})
        snap.write_text('\n'.join([canonical_json(other_rec), canonical_json(rec)]) + '\n')
        with TeacherStore(tmp_path/f'b{i}') as b:
            if msg is None:                                   # a valid record: imported
                assert b.import_jsonl(snap) == 2
            else:
                with pytest.raises(RecordError, match=rf'bad{i}\.jsonl:2: .*{msg}'): b.import_jsonl(snap)
                assert len(b) == 0

def test_pickled_store_is_refused_without_unpickling(tmp_path):
    "A store directory holding pickled values is refused with a clear message, and no pickle is ever loaded."
    sentinel = tmp_path/'pwned'
    class Evil:                                               # unpickling this creates `sentinel`
        def __reduce__(self): return (open, (str(sentinel), 'w'))
    with diskcache.Cache(str(tmp_path/'plain')) as c: c['record'] = {'parsed': [1, 2, 3]}; c['evil'] = Evil()
    with pytest.raises(UnsafeStoreError, match=r'holds 2 pickled \(non-JSON\) row\(s\).*can run arbitrary code.*export_jsonl'):
        TeacherStore(tmp_path/'plain')
    with pytest.raises(UnsafeStoreError): TeacherStore(tmp_path/'plain', readonly=True)
    assert not sentinel.exists()
    # a pickled row slipped into a store that is already open is refused on read, not unpickled
    st = TeacherStore(tmp_path/'s')
    a = answer(0, 0); st.put(req(0, 0), raw_text='x', parsed=a, model='sim-1')
    con = sqlite3.connect(str(tmp_path/'s'/'cache.db'))
    with con: con.execute('UPDATE Cache SET mode = ?, value = ?', (diskcache.core.MODE_PICKLE, sqlite3.Binary(pickle.dumps(Evil()))))
    con.close()
    with pytest.raises(UnsafeStoreError, match='refusing to read it'): st.get(req(0, 0))
    st.close()
    with pytest.raises(UnsafeStoreError, match='pickled'): TeacherStore(tmp_path/'s')
    assert not sentinel.exists()

def test_store_settings_and_foreign_caches(tmp_path):
    "A new store is JSON-only, never evicts (eviction_policy none) and keeps values in SQLite; a foreign diskcache is not adopted."
    TeacherStore(tmp_path/'s').close()
    con = sqlite3.connect(str(tmp_path/'s'/'cache.db'))
    settings = dict(con.execute('SELECT key, value FROM Settings'))
    mark = dict(con.execute('SELECT key, value FROM PaperDistillStore'))
    con.close()
    assert settings['eviction_policy'] == 'none' and settings['disk_min_file_size'] >= 2**31
    assert mark['format'] == 'paper_distill.store' and int(mark['store_schema']) == STORE_SCHEMA_VERSION
    with diskcache.Cache(str(tmp_path/'j'), disk=diskcache.JSONDisk) as c: c['x'] = [1]
    with pytest.raises(UnsafeStoreError, match='not made by TeacherStore'): TeacherStore(tmp_path/'j')
    diskcache.Cache(str(tmp_path/'empty')).close()            # an empty diskcache is safe to adopt
    with TeacherStore(tmp_path/'empty') as st: st.put(req(0, 0), raw_text='x', parsed=[1, 2, 3], model='sim-1'); assert len(st) == 1

def test_merge_reports_conflicts_and_keeps_records(tmp_path):
    "merge adds new keys, counts identical ones, reports conflicting ones and never overwrites them."
    with TeacherStore(tmp_path/'a') as a, TeacherStore(tmp_path/'b') as b:
        for i in range(10): a.put(req(0, i), raw_text='a', parsed=answer(0, i), model='sim-1')
        a.export_jsonl(tmp_path/'a.jsonl'); b.import_jsonl(tmp_path/'a.jsonl')
        for i in range(10, 15): b.put(req(0, i), raw_text='b', parsed=answer(0, i), model='sim-1')
        c = TeacherStore(tmp_path/'c')
        c.put(req(0, 0), raw_text='c', parsed=answer(0, 0), model='sim-1'); c.put(req(0, 1), raw_text='c', parsed=[1, 2, 3], model='sim-1')
        before = dict(a.items())
        rep = a.merge(b)
        assert (rep.added, rep.identical, rep.conflicts) == (5, 10, [])
        rep = a.merge(c)
        assert (rep.added, rep.identical, sorted(rep.conflicts), rep.answer_conflicts) == (0, 0, sorted([req(0, 0).key, req(0, 1).key]), [req(0, 1).key])
        assert all(a.get(k) == v for k, v in before.items()) and len(a) == 15
        c.close()

# ---------------------------------------------------------------- readonly: reads everything, writes nothing

def _dir_state(d):
    "Every file of a directory with its bytes, size, mtime and ctime (ctime moves on any write or metadata change)."
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in sorted(Path(d).iterdir())}

def test_readonly_open_and_reads_write_nothing(tmp_path):
    "A readonly store reads like the writable one, refuses every write, and leaves every file (bytes, mtime, ctime) and the listing untouched."
    with _varied_store(tmp_path/'s', n=60) as st:
        want = dict(n=len(st), keys=st.keys(), items=list(st.items()), stats=st.stats())
        st.export_jsonl(tmp_path/'rw.jsonl')
    (tmp_path/'s').chmod(0o555); (tmp_path/'s'/'cache.db').chmod(0o444)     # as a non-root user this alone would stop writes
    before = _dir_state(tmp_path/'s')
    time.sleep(0.02)                                       # a write now would show as a new mtime
    with TeacherStore(tmp_path/'s', readonly=True) as ro:
        assert (len(ro), ro.keys(), list(ro.items())) == (want['n'], want['keys'], want['items'])
        for k, rec in want['items']: assert ro.get(k) == rec and k in ro and StoreRequest.from_dict(rec['request']) in ro
        assert ro.get('0' * 64) is None and '0' * 64 not in ro
        with ThreadPoolExecutor(4) as ex:                  # one read-only store shared by threads (as a teacher's workers do)
            assert list(ex.map(ro.get, [k for k, _ in want['items']] * 4)) == [r for _, r in want['items']] * 4
        assert ro.export_jsonl(tmp_path/'ro.jsonl') == want['n']
        assert (tmp_path/'ro.jsonl').read_bytes() == (tmp_path/'rw.jsonl').read_bytes()
        assert ro.stats().equals(want['stats'])
        with TeacherStore(tmp_path/'copy') as cp: assert cp.merge(ro).added == want['n']   # merging *from* a readonly store
        for write in (lambda: ro.put(req(9, 9), raw_text='x', parsed=[1, 2, 3], model='m'),
                      lambda: ro.import_jsonl(tmp_path/'rw.jsonl'), lambda: ro.merge(ro)):
            with pytest.raises(PermissionError, match='opened readonly; open it with readonly=False to write'): write()
        assert 'readonly' in repr(ro)
    assert _dir_state(tmp_path/'s') == before
    (tmp_path/'s').chmod(0o755)
    # what is not a teacher store is refused readonly too, and nothing is written to it either
    diskcache.Cache(str(tmp_path/'foreign')).close(); fb = _dir_state(tmp_path/'foreign')
    with pytest.raises(UnsafeStoreError, match='not a teacher store'): TeacherStore(tmp_path/'foreign', readonly=True, wait_s=0.2)
    assert _dir_state(tmp_path/'foreign') == fb
    with pytest.raises(FileNotFoundError, match='no teacher store at'): TeacherStore(tmp_path/'missing', readonly=True)
    assert not (tmp_path/'missing').exists()

def test_readonly_reads_the_wal_of_a_killed_writer_and_a_live_one(tmp_path):
    "Records a writer committed to its WAL (then SIGKILL) are all seen readonly; a readonly view follows a live writer's commits."
    d = tmp_path/'s'
    code = '''
    n = int(sys.argv[2])
    st = TeacherStore(sys.argv[1])
    for i in range(n):
        a = answer(3, i); st.put(req(3, i), raw_text=",".join(map(str, a)), parsed=a, model="sim-1")
    print("committed", flush=True)
    sys.stdin.read()                                       # wait, connection open, until killed
    '''
    p = _py(code, d, 50, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b'committed'
    os.kill(p.pid, signal.SIGKILL); p.wait(timeout=60)
    assert (d/'cache.db-wal').stat().st_size > 0           # the records sit in the WAL, not yet in cache.db
    with TeacherStore(d, readonly=True) as ro:
        assert len(ro) == 50
        for i in range(50): _check_record(ro.get(req(3, i)), 3, i)
    # a live writer in another process: counts only grow, every record read is whole, and the end state is all of it
    TeacherStore(d).close()                                # a clean close folds the WAL into cache.db
    assert not (d/'cache.db-wal').exists()
    with TeacherStore(d, readonly=True) as ro:
        w = _py(WRITER, d, 4, 150)
        seen = []
        while w.poll() is None:
            seen.append(len(ro))
            for k in ro.keys()[-3:]: validate_record(ro.get(k))
            time.sleep(0.005)
        assert w.returncode == 0
        assert seen == sorted(seen) and seen[0] >= 50 and len(set(seen)) > 1
        assert len(ro) == 200
        for i in range(150): _check_record(ro.get(req(4, i)), 4, i)

READ_ON_RO_FS = '''
import sys
from paper_distill.records import StoreRequest
from paper_distill.store import TeacherStore
with TeacherStore(sys.argv[1], readonly=True) as ro:
    print("records", len(ro), flush=True)
    ro.export_jsonl(sys.argv[2])
    try: ro.put(StoreRequest("s", "m", "pair", "t", "h", "p", ("a", "b")), raw_text="1", parsed=1, model="m")
    except PermissionError as e: print("put refused", flush=True)
try: TeacherStore(sys.argv[1]).put(StoreRequest("s", "m", "pair", "t", "h", "p", ("a", "b")), raw_text="1", parsed=1, model="m")
except Exception as e: print("writable open fails:", type(e).__name__, str(e).replace(chr(10), " "), flush=True)
'''

def test_readonly_store_on_a_read_only_file_system(tmp_path):
    "A store bind-mounted read-only (in a private mount namespace) opens readonly and reads whole; a writable open cannot."
    if not shutil.which('unshare') or subprocess.run(['unshare', '-m', 'true'], capture_output=True).returncode:
        pytest.skip('needs `unshare -m` (a mount namespace) to mount a read-only file system')
    with _varied_store(tmp_path/'s', n=30) as st: st.export_jsonl(tmp_path/'rw.jsonl')
    mnt = tmp_path/'mnt'; mnt.mkdir()
    (tmp_path/'read.py').write_text(READ_ON_RO_FS)
    q = shlex.quote
    cmd = (f'mount --bind {q(str(tmp_path/"s"))} {q(str(mnt))} && mount -o remount,bind,ro {q(str(mnt))} && '
           f'! touch {q(str(mnt/"probe"))} 2>/dev/null && {q(sys.executable)} {q(str(tmp_path/"read.py"))} {q(str(mnt))} {q(str(tmp_path/"ro.jsonl"))}')
    out = subprocess.run(['unshare', '-m', 'sh', '-c', cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'records 30' in out.stdout and 'put refused' in out.stdout
    assert 'writable open fails: PermissionError' in out.stdout and 'readonly=True' in out.stdout   # the mount really is read-only, and the error says so
    assert (tmp_path/'ro.jsonl').read_bytes() == (tmp_path/'rw.jsonl').read_bytes()

# ---------------------------------------------------------------- a store that trusts nothing it reads

def _rewrite_row(store_dir, key, value=None, **cols):
    "Rewrite the Cache row of `key` in a store's cache.db behind the store's back: its value (as JSONDisk writes it) and/or raw columns."
    disk = diskcache.JSONDisk(str(store_dir), min_file_size=2**31)      # values inside cache.db, as the store keeps them
    db_key, raw = disk.put(key)
    if value is not None: _, cols['mode'], _, cols['value'] = disk.store(value, False)
    con = sqlite3.connect(str(Path(store_dir)/'cache.db'))
    with con: n = con.execute(f"UPDATE Cache SET {', '.join(f'{c} = ?' for c in cols)} WHERE key = ? AND raw = ?", (*cols.values(), db_key, raw)).rowcount
    con.close()
    assert n == 1


def test_every_path_checks_the_answer_against_its_request(tmp_path):
    "put, import_jsonl, import_parquet, merge and get all refuse an answer that does not answer its request, naming the key and the reason."
    from paper_distill.snapshots import write_parquet
    pair = StoreRequest("simulated", "sim-1", "pair", "pair-v1", "h", "p", ("a", "b"))
    cap = StoreRequest("simulated", "sim-1", "caption", "cap-v1", "h", "", ("a",))
    bad = [(req(0, 0), [1, 1, 2], 'not a permutation of 1..3; repeats [1]; misses [3]'), (req(0, 1), [1, 2], 'not a permutation of 1..3; misses [3]'),
           (pair, 2, 'a pair answer is 0 or 1'), (pair, True, 'a pair answer is 0 or 1'), (cap, '  ', 'a caption is non-empty text')]
    with TeacherStore(tmp_path/'s') as st:
        for r, parsed, why in bad:                                    # no validator: the store's own check refuses them
            with pytest.raises(RecordError, match=rf"{r.key[:16]}.*{re.escape(why)}"): st.put(r, raw_text='x', parsed=parsed, model='sim-1')
        with pytest.raises(RecordError, match=r"answered by model 'gpt-4o-mini', but its request \(and so its key\) names model 'sim-1'"):
            st.put(req(0, 0), raw_text='1,2,3', parsed=[1, 2, 3], model='gpt-4o-mini')
        assert len(st) == 0
        st.put(req(0, 0), raw_text='1,2,3', parsed=[1, 2, 3], model='sim-1-2024-08-06')   # a pinned version of the model asked
        for i in range(1, 6): st.put(req(0, i), raw_text='x', parsed=answer(0, i), model='sim-1')
        good = [r for _, r in st.items()]
        st.export_jsonl(tmp_path/'good.jsonl')
    for r, parsed, why in bad[:3]:                                     # a well-formed snapshot (count and checksum right) holding one bad record
        recs = good[:3] + [make_record(r, 'x', parsed, 'sim-1')] + good[3:]
        write_jsonl(recs, tmp_path/'bad.jsonl')
        with TeacherStore(tmp_path/'fresh') as fr:
            with pytest.raises(RecordError, match=rf"bad\.jsonl:5: answer .*{re.escape(why)}.*\(key {r.key[:16]}\.\.\.\)\. Nothing was imported"):
                fr.import_jsonl(tmp_path/'bad.jsonl')
            assert len(fr) == 0
    with pytest.raises(RecordError, match=r"not a valid rank answer for its 3 image\(s\)"): write_parquet([make_record(req(0, 0), 'x', [1, 1, 2], 'sim-1')], tmp_path/'x.parquet')
    # a store altered on disk: get refuses the record (naming the store, the key, the fix) and deletes nothing; merge and export stop too
    shutil.copytree(tmp_path/'s', tmp_path/'altered')
    _rewrite_row(tmp_path/'altered', req(0, 2).key, {**good[[r['key'] for r in good].index(req(0, 2).key)], 'parsed': [2, 2, 1]})
    with TeacherStore(tmp_path/'altered', readonly=True) as alt:
        with pytest.raises(RecordError) as e: alt.get(req(0, 2))
        msg = str(e.value)
        assert str(tmp_path/'altered') in msg and req(0, 2).key[:16] in msg and 'repeats [2]' in msg and 'rebuild it from a snapshot you trust' in msg
        assert len(alt) == 6 and alt.get(req(0, 3)) is not None        # nothing deleted; the other records still served
        with pytest.raises(RecordError, match=req(0, 2).key[:16]): alt.export_jsonl(tmp_path/'altered.jsonl')
        with TeacherStore(tmp_path/'target') as tg:
            with pytest.raises(RecordError, match=req(0, 2).key[:16]): tg.merge(alt)
            assert len(tg) == 0                                         # all or nothing
    _rewrite_row(tmp_path/'altered', req(0, 2).key, good[[r['key'] for r in good].index(req(0, 3).key)])   # a valid record, under another key
    with TeacherStore(tmp_path/'altered') as alt:
        with pytest.raises(RecordError, match=rf"record under key {req(0, 2).key[:16]}\.\.\.: it is the record of key {req(0, 3).key[:16]}"): alt.get(req(0, 2))


def test_a_jsonl_snapshot_cut_at_a_line_boundary_is_refused(tmp_path, caplog):
    "Snapshots carry a count and a checksum: a file cut at a line boundary (plain or gzip), a lost or an edited line are refused; an older file is read with a warning."
    with _varied_store(tmp_path/'a', n=20) as a: a.export_jsonl(tmp_path/'s.jsonl'); a.export_jsonl(tmp_path/'s.jsonl.gz')
    lines = (tmp_path/'s.jsonl').read_bytes().split(b'\n')[:-1]
    assert len(lines) == 22
    def save(name, ls, gz=False):
        data = b''.join(l + b'\n' for l in ls)
        (tmp_path/name).write_bytes(gzip.compress(data, mtime=0) if gz else data)
    save('cut.jsonl', lines[:15]); save('cut.jsonl.gz', lines[:15], gz=True)
    save('lost.jsonl', lines[:5] + lines[6:])
    edited = {**json.loads(lines[3]), 'created_at': '2020-01-01T00:00:00.000000Z'}    # still a valid record: only the checksum can tell
    save('edited.jsonl', lines[:3] + [canonical_json(edited).encode()] + lines[4:])
    with TeacherStore(tmp_path/'b') as b:
        for name, want in [('cut.jsonl', 'ends after 14 record line(s) without the closing line'), ('cut.jsonl.gz', 'ends after 14 record line(s)'),
                           ('lost.jsonl', 'holds 19 record line(s) but its closing line says 20'), ('edited.jsonl', 'a line was altered after export')]:
            with pytest.raises(RecordError) as e: b.import_jsonl(tmp_path/name)
            assert str(tmp_path/name) in str(e.value) and want in str(e.value) and 'copy the snapshot again' in str(e.value), str(e.value)
        assert len(b) == 0
        assert b.import_jsonl(tmp_path/'s.jsonl.gz') == 20
    save('older.jsonl', lines[1:-1])                                    # format 1: record lines only
    with TeacherStore(tmp_path/'c') as c, caplog.at_level(logging.WARNING, logger='paper_distill.records'):
        assert c.import_jsonl(tmp_path/'older.jsonl') == 20
    assert 'older.jsonl: an older snapshot without a record count or checksum (20 record line(s))' in caplog.text


def _hostile_store(tmp_path, filename):
    "A teacher store of two records, one of whose rows is rewritten (behind the store) into diskcache's file mode naming `filename`."
    d = tmp_path/'hostile'
    with TeacherStore(d) as st:
        for i in range(2): st.put(req(0, i), raw_text='x', parsed=answer(0, i), model='sim-1')
    _rewrite_row(d, req(0, 1).key, mode=diskcache.core.MODE_BINARY, filename=str(filename), value=None)
    return d


def test_rows_in_file_mode_are_refused_on_opening(tmp_path):
    "A row whose value is a file (diskcache's file mode) is refused when the store opens, writable or readonly; in an open store, when read; the file is never read."
    outside = tmp_path/'outside.bin'                                   # a valid record, as JSONDisk would read it
    outside.write_bytes(zlib.compress(json.dumps(make_record(req(0, 1), 'x', answer(0, 1), 'sim-1')).encode()))
    st = TeacherStore(tmp_path/'hostile')                             # opened before the row is rewritten
    d = _hostile_store(tmp_path, outside)
    with pytest.raises(UnsafeStoreError, match='file mode'): st.get(req(0, 1))
    st.close()
    for ro in (False, True):
        with pytest.raises(UnsafeStoreError, match=r"holds 1 row\(s\) in diskcache's file mode, .*outside\.bin.*refusing to open it"):
            TeacherStore(d, readonly=ro)


def test_a_fifo_named_by_a_row_cannot_hang_export(tmp_path):
    "A row naming a FIFO inside the store's folder: opening and exporting (in a child process, so a hang would fail, not block) refuse at once."
    d = _hostile_store(tmp_path, 'fifo.val')
    os.mkfifo(d/'fifo.val')
    code = '''
    try:
        with TeacherStore(sys.argv[1], readonly=True) as st: st.export_jsonl(sys.argv[2]); print("exported")
    except Exception as e: print(type(e).__name__, e)
    '''
    out = subprocess.run([sys.executable, '-c', CHILD_HELPERS + textwrap.dedent(code), str(d), str(tmp_path/'x.jsonl')],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('UnsafeStoreError') and "diskcache's file mode" in out.stdout and 'fifo.val' in out.stdout
    assert not (tmp_path/'x.jsonl').exists()


MAKER = '''
import paper_distill.store as S
real = S._mark_db
def paused(db):                                    # the creation pauses where diskcache has made its tables but the store has no mark yet
    print("tables made", flush=True); sys.stdin.readline(); real(db)
S._mark_db = paused
S.TeacherStore(sys.argv[1]).close()
print("created", flush=True)
'''

def test_readonly_open_waits_while_another_process_creates_the_store(tmp_path):
    "A readonly open that lands while a second process is creating the store waits (up to wait_s) for it, instead of 'not a teacher store'."
    d = tmp_path/'s'
    p = _py(MAKER, d, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == 'tables made'
        assert (d/'cache.db').exists()
        release = threading.Timer(0.5, lambda: (p.stdin.write('\n'), p.stdin.flush()))
        release.start()                                                # the maker finishes while the reader already waits
        with TeacherStore(d, readonly=True, wait_s=120) as ro: assert len(ro) == 0
        release.join()
        assert p.stdout.readline().strip() == 'created' and p.wait(timeout=60) == 0
    finally:
        if p.poll() is None: p.kill()
    (tmp_path/'never').mkdir(); (tmp_path/'never'/'cache.db').touch()  # the wait is bounded
    with pytest.raises(UnsafeStoreError, match=r"not a teacher store \(no PaperDistillStore mark, after waiting 0\.3 s"):
        TeacherStore(tmp_path/'never', readonly=True, wait_s=0.3)


WRITE_OPEN = '''
try: TeacherStore(sys.argv[1]); print("opened")
except Exception as e: print(type(e).__name__, str(e).replace(chr(10), " "))
'''

def test_writable_open_on_read_only_media_suggests_readonly(tmp_path):
    "Opening for writing where nothing can be written says so and suggests readonly=True (a chmod as a user; a read-only mount as root, who ignores permissions)."
    with TeacherStore(tmp_path/'s') as st: st.put(req(0, 0), raw_text='x', parsed=answer(0, 0), model='sim-1')
    if os.geteuid() != 0:
        (tmp_path/'s'/'cache.db').chmod(0o444); (tmp_path/'s').chmod(0o555)
        try:
            with pytest.raises(PermissionError, match=r"cannot write to store .*open it with TeacherStore\(path, readonly=True\)"): TeacherStore(tmp_path/'s')
        finally: (tmp_path/'s').chmod(0o755)
        return
    if not shutil.which('unshare') or subprocess.run(['unshare', '-m', 'true'], capture_output=True).returncode:
        pytest.skip('running as root (permissions do not stop root) and `unshare -m` cannot make a read-only mount here')
    mnt = tmp_path/'mnt'; mnt.mkdir()
    (tmp_path/'open.py').write_text(CHILD_HELPERS + WRITE_OPEN)
    q = shlex.quote
    cmd = (f'mount --bind {q(str(tmp_path/"s"))} {q(str(mnt))} && mount -o remount,bind,ro {q(str(mnt))} && '
           f'{q(sys.executable)} {q(str(tmp_path/"open.py"))} {q(str(mnt))} && {q(sys.executable)} {q(str(tmp_path/"open.py"))} {q(str(mnt/"new"))}')
    out = subprocess.run(['unshare', '-m', 'sh', '-c', cmd], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    existing, new = out.stdout.splitlines()
    for line in (existing, new):
        assert line.startswith('PermissionError cannot write to store') and 'read-only' in line and 'TeacherStore(path, readonly=True)' in line, line


def _limit_pages(st, extra):
    "Let the store's SQLite connection grow the database by `extra` pages at most (SQLite's own 'database or disk is full')."
    con = st._cache._con
    con.execute(f'PRAGMA max_page_count = {con.execute("PRAGMA page_count").fetchone()[0] + extra}')
    return con


def test_a_full_disk_is_store_full_and_loses_nothing(tmp_path):
    "When SQLite cannot grow the database, put, import_jsonl and merge raise StoreFull naming the store; records stored before are all kept, and the store goes on."
    from paper_distill.store import StoreFull
    big = lambda i: ' '.join(hashlib.sha256(f'{i} {j}'.encode()).hexdigest() for j in range(40))   # text that does not compress
    capreq = lambda i: StoreRequest("simulated", "sim-1", "caption", "cap-v1", "h", "", (f"{i:064x}",))
    with TeacherStore(tmp_path/'src') as src:
        for i in range(300): src.put(capreq(i), raw_text=big(i), parsed=big(i), model='sim-1')
        src.export_jsonl(tmp_path/'src.jsonl')
    with TeacherStore(tmp_path/'s') as st:
        for i in range(5): st.put(req(0, i), raw_text='x', parsed=answer(0, i), model='sim-1')
        before = dict(st.items())
        con = _limit_pages(st, 3)
        with pytest.raises(StoreFull) as e:
            for i in range(1000, 1100): st.put(capreq(i), raw_text=big(i), parsed=big(i), model='sim-1')
        assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC and str(tmp_path/'s') in str(e.value) and 'is full' in str(e.value)
        n_full = len(st)
        with pytest.raises(StoreFull, match=rf"store {re.escape(str(tmp_path/'s'))} is full: importing .*src\.jsonl failed"): st.import_jsonl(tmp_path/'src.jsonl')
        assert len(st) == n_full                                       # all or nothing
        with TeacherStore(tmp_path/'src', readonly=True) as src:
            with pytest.raises(StoreFull, match='merging'): st.merge(src)
        assert len(st) == n_full and all(st.get(k) == v for k, v in before.items())
        con.execute('PRAGMA max_page_count = 1073741823')              # space again: the same store goes on (no transaction left open)
        assert st.import_jsonl(tmp_path/'src.jsonl') == 300
    assert _integrity_ok(tmp_path/'s')
    with TeacherStore(tmp_path/'s', readonly=True) as st:
        assert len(st) == n_full + 300 and all(st.get(k) == v for k, v in before.items())


def test_put_of_a_stored_request_returns_the_stored_record(tmp_path):
    "A second put for a request already answered keeps the first record and returns it, not the new answer."
    with TeacherStore(tmp_path/'s') as st:
        first = st.put(req(0, 0), raw_text='1,2,3', parsed=[1, 2, 3], model='sim-1', latency_s=1.0)
        again = st.put(req(0, 0), raw_text='3,2,1', parsed=[3, 2, 1], model='sim-1', latency_s=2.0)
        assert again == first and st.get(req(0, 0)) == first and len(st) == 1
