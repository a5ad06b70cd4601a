"""Parquet snapshots of real teacher stores: byte-identical round trips, and every kind of bad file refused whole,
with the target store left exactly as it was, under the same conflict rules as JSONL import."""
import gzip, hashlib, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, pytest
from paper_distill.records import StoreRequest, RecordError, make_record, write_jsonl
from paper_distill.prompts import is_ranking_of
from paper_distill.store import TeacherStore
from paper_distill.snapshots import write_parquet, read_parquet_records, snapshot_sizes

H = [hashlib.sha256(bytes([i])).hexdigest() for i in range(8)]


def req(i:int, task:str='rank', k:int=5, teacher:str='simulated:world'):
    persona = '' if task == 'caption' else f'persona {i % 11}: Zoë likes café colours ✓'
    hs = H[i % 3:i % 3 + k] if task != 'caption' else (H[i % 8],)
    return StoreRequest(teacher, 'sim-1', task, f'{task}-text-v1', f'{task}-hash', persona, tuple(hs), {'temperature': 0.5, 'seed': i})


def fill(store:TeacherStore, n:int, offset:int=0):
    "Put n varied, valid records: rankings of 2-5 images, pairs and captions; plain and fenced raw texts; usage, int and float latency."
    for i in range(offset, offset + n):
        task = ('rank', 'rank', 'pair', 'caption')[i % 4]
        k = {'rank': 2 + i % 4, 'pair': 2, 'caption': 1}[task]
        r = req(i, task, k)
        if task == 'rank': parsed = [int(x) + 1 for x in np.random.default_rng(i).permutation(k)]
        elif task == 'pair': parsed = i % 3 % 2
        else: parsed = f'A striped scarf number {i}.'
        raw = parsed if task == 'caption' else ','.join(map(str, parsed)) if task == 'rank' else str(parsed)
        if i % 5 == 0: raw = f'```\n{raw}\n```'
        store.put(r, raw_text=raw, parsed=parsed, model='sim-1', validator=is_ranking_of,
                  usage={'input_tokens': 1000 + i, 'output_tokens': 9} if i % 2 else None, latency_s=(1 if i % 7 == 0 else i / 13) if i % 3 else None)


def jsonl_bytes(store:TeacherStore, tmp_path)->bytes:
    p = tmp_path/f'dump-{time.perf_counter_ns()}.jsonl'
    store.export_jsonl(p)
    return p.read_bytes()


def rewrite(src, dst, fn, meta:dict|None=None):
    "Rewrite a snapshot through pyarrow: `fn(table) -> table`; file metadata kept (entries in `meta` replaced)."
    t = pq.read_table(src)
    md = dict(t.schema.metadata); md.update({k.encode(): v.encode() for k, v in (meta or {}).items()})
    pq.write_table(fn(t).replace_schema_metadata(md), dst)


def set_cell(t:pa.Table, col:str, i:int, value)->pa.Table:
    vals = t.column(col).to_pylist(); vals[i] = value
    return t.set_column(t.schema.get_field_index(col), col, pa.array(vals, t.schema.field(col).type))


@pytest.fixture
def snap(tmp_path):
    "A store of 60 records and its Parquet snapshot."
    with TeacherStore(tmp_path/'src') as st:
        fill(st, 60)
        st.export_parquet(tmp_path/'src.parquet')
    return tmp_path/'src', tmp_path/'src.parquet'


@pytest.fixture
def target(tmp_path):
    "A store that already holds 10 records of its own, and its JSONL bytes before anything is imported."
    st = TeacherStore(tmp_path/'target')
    fill(st, 10, offset=1000)
    yield st, jsonl_bytes(st, tmp_path)
    st.close()


@pytest.mark.parametrize('key_bytes', [32, 8])
def test_round_trip_gives_identical_records(snap, tmp_path, key_bytes):
    "store → parquet → fresh store: the same records, byte for byte (compared through export_jsonl); a second import adds nothing."
    src, _ = snap
    with TeacherStore(src, readonly=True) as a, TeacherStore(tmp_path/'copy') as b:
        assert a.export_parquet(tmp_path/'s.parquet', key_bytes=key_bytes) == 60
        assert b.import_parquet(tmp_path/'s.parquet') == 60
        assert b.import_parquet(tmp_path/'s.parquet') == 0
        assert jsonl_bytes(b, tmp_path) == jsonl_bytes(a, tmp_path)
        assert read_parquet_records(tmp_path/'s.parquet') == [r for _, r in a.items()]
        raws = pq.read_table(tmp_path/'s.parquet').column('raw_text').to_pylist()
        assert 0 < raws.count(None) < 60                                # plain raw texts are rebuilt, fenced ones kept


def test_export_twice_gives_identical_bytes(snap, tmp_path):
    "Two exports a second apart, and the export of an imported copy, are the same bytes; rows are in key order."
    src, first = snap
    time.sleep(1.1)
    with TeacherStore(src, readonly=True) as a: a.export_parquet(tmp_path/'again.parquet'); keys = a.keys()
    with TeacherStore(tmp_path/'copy') as b:
        b.import_parquet(first); b.export_parquet(tmp_path/'copy.parquet')
    assert first.read_bytes() == (tmp_path/'again.parquet').read_bytes() == (tmp_path/'copy.parquet').read_bytes()
    assert [k.hex() for k in pq.read_table(first).column('key').to_pylist()] == keys
    md = pq.ParquetFile(first).metadata.metadata
    assert md[b'paper_distill.records'] == b'60' and md[b'paper_distill.format_version'] == b'1'
    assert snapshot_sizes(first).bytes.sum() == first.stat().st_size


def test_tampered_key_is_refused_naming_the_row(snap, target, tmp_path):
    _, s = snap
    st, before = target
    other = hashlib.sha256(b'not this request').digest()
    rewrite(s, tmp_path/'bad.parquet', lambda t: set_cell(t, 'key', 17, other))
    with pytest.raises(RecordError) as e: st.import_parquet(tmp_path/'bad.parquet')
    msg = str(e.value)
    assert f"row 17 (key {other.hex()[:16]}...)" in msg and 'is not the key of its request' in msg
    assert 'Nothing was imported' in msg and 'export_parquet' in msg
    assert jsonl_bytes(st, tmp_path) == before


def test_tampered_request_is_refused_with_a_short_key(snap, target, tmp_path):
    "With key_bytes=8, a row whose persona was changed no longer matches its stored key prefix."
    src, _ = snap
    st, before = target
    with TeacherStore(src, readonly=True) as a: a.export_parquet(tmp_path/'k8.parquet', key_bytes=8)
    def persona(t):
        req_ = t.column('request').combine_chunks()
        p = req_.field('persona').to_pylist(); p[5] = p[5] + ' '
        fields = list(t.schema.field('request').type)
        arr = pa.StructArray.from_arrays([pa.array(p) if f.name == 'persona' else req_.field(f.name) for f in fields], fields=fields)
        return t.set_column(t.schema.get_field_index('request'), 'request', arr)
    rewrite(tmp_path/'k8.parquet', tmp_path/'bad.parquet', persona)
    with pytest.raises(RecordError, match=r"row 5 \(key [0-9a-f]{16}\.\.\.\).*is not the key of its request"): st.import_parquet(tmp_path/'bad.parquet')
    assert jsonl_bytes(st, tmp_path) == before


def test_truncated_file_is_refused(snap, target, tmp_path):
    "Rows dropped with the metadata count kept, and a file cut short: both refused, nothing imported."
    _, s = snap
    st, before = target
    rewrite(s, tmp_path/'dropped.parquet', lambda t: t.slice(0, 59))
    with pytest.raises(RecordError, match="holds 59 rows but its metadata says 60 records"): st.import_parquet(tmp_path/'dropped.parquet')
    data = s.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 8):
        (tmp_path/'cut.parquet').write_bytes(data[:cut])
        with pytest.raises(RecordError, match="no Parquet footer"): st.import_parquet(tmp_path/'cut.parquet')
    assert jsonl_bytes(st, tmp_path) == before


def test_damaged_page_is_refused(snap, target, tmp_path):
    "A flipped byte inside the persona column's pages fails the page checksum (or decoding): refused."
    _, s = snap
    st, before = target
    md = pq.ParquetFile(s).metadata.row_group(0)
    col = next(md.column(j) for j in range(md.num_columns) if md.column(j).path_in_schema == 'request.persona')
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(s.read_bytes())
    data[start + col.total_compressed_size - 3] ^= 0x55
    (tmp_path/'flip.parquet').write_bytes(bytes(data))
    with pytest.raises(RecordError, match="corrupt|not the key"): st.import_parquet(tmp_path/'flip.parquet')
    assert jsonl_bytes(st, tmp_path) == before


def test_invalid_answer(tmp_path):
    "The ranking [1, 1] for two images is refused by put (no validator needed), by JSONL import, by parquet export, and in a parquet file."
    bad = req(0, 'rank', 2)
    msg = r"answer \[1, 1\] is not a valid rank answer for its 2 image\(s\)"
    with TeacherStore(tmp_path/'bad') as st:
        with pytest.raises(RecordError, match=msg): st.put(bad, raw_text='1,1', parsed=[1, 1], model='sim-1')
        assert len(st) == 0
    bad_rec = make_record(bad, '1,1', [1, 1], 'sim-1')
    write_jsonl([bad_rec], tmp_path/'bad.jsonl')                      # a well-formed snapshot holding it
    with pytest.raises(RecordError, match=msg): write_parquet([bad_rec], tmp_path/'x.parquet')
    assert not (tmp_path/'x.parquet').exists()
    with TeacherStore(tmp_path/'jsonl') as j:
        with pytest.raises(RecordError, match=r"bad\.jsonl:2: " + msg): j.import_jsonl(tmp_path/'bad.jsonl')
        assert len(j) == 0
    with TeacherStore(tmp_path/'ok') as ok:
        ok.put(bad, raw_text='2,1', parsed=[2, 1], model='sim-1', validator=is_ranking_of)
        fill(ok, 6, offset=50)
        ok.export_parquet(tmp_path/'ok.parquet')
        row = ok.keys().index(bad.key)
    rewrite(tmp_path/'ok.parquet', tmp_path/'forged.parquet', lambda t: set_cell(t, 'parsed', row, '[1,1]'))
    with TeacherStore(tmp_path/'fresh') as f:
        with pytest.raises(RecordError, match=rf"row {row} \(key {bad.key[:16]}\.\.\.\): answer \[1, 1\] is not a valid rank answer"):
            f.import_parquet(tmp_path/'forged.parquet')
        assert len(f) == 0


def test_conflicts_behave_like_import_jsonl(tmp_path):
    "Identical records are skipped, new ones added and counted; a different record under a held key refuses the whole file, with the same message."
    with TeacherStore(tmp_path/'a') as a, TeacherStore(tmp_path/'b') as b:
        fill(a, 20)
        a.export_parquet(tmp_path/'a.parquet'); a.export_jsonl(tmp_path/'a.jsonl')
        write_jsonl([r for _, r in a.items()][::2], tmp_path/'half.jsonl')      # every other record of a
        for k in a.keys()[:10]:                                       # the same requests answered again (another created_at): conflicts
            r = a.get(k); b.put(StoreRequest.from_dict(r['request']), raw_text=r['raw_text'], parsed=r['parsed'], model=r['model'])
        fill(b, 5, offset=500)
        b.export_parquet(tmp_path/'b.parquet'); b.export_jsonl(tmp_path/'b.jsonl')
    msgs, counts = {}, {}
    for name in ('jsonl', 'parquet'):
        with TeacherStore(tmp_path/f'x-{name}') as x:
            imp = x.import_parquet if name == 'parquet' else x.import_jsonl
            assert x.import_jsonl(tmp_path/'half.jsonl') == 10
            counts[name] = (imp(tmp_path/f'a.{name}'), imp(tmp_path/f'a.{name}'))   # half new, half identical; then all identical
            before = jsonl_bytes(x, tmp_path)
            with pytest.raises(RecordError) as e: imp(tmp_path/f'b.{name}')
            assert jsonl_bytes(x, tmp_path) == before and len(x) == 20
            msgs[name] = str(e.value).replace(f'b.{name}', 'SNAPSHOT').replace(f'x-{name}', 'STORE')
    assert counts == {'jsonl': (10, 0), 'parquet': (10, 0)}
    assert msgs['jsonl'] == msgs['parquet'] and 'with a different record; nothing was imported' in msgs['parquet']


def test_duplicate_rows_follow_jsonl_rules(snap, tmp_path):
    "A row repeated identically is imported once; a key repeated with another record is refused."
    _, s = snap
    t = pq.read_table(s)
    dup = pa.concat_tables([t, t.slice(3, 1)])
    pq.write_table(dup.replace_schema_metadata({**t.schema.metadata, b'paper_distill.records': b'61'}), tmp_path/'dup.parquet')
    with TeacherStore(tmp_path/'d') as d: assert d.import_parquet(tmp_path/'dup.parquet') == 60
    other = set_cell(t.slice(3, 1), 'created_at', 0, '2020-01-01T00:00:00Z')
    pq.write_table(pa.concat_tables([t, other]).replace_schema_metadata({**t.schema.metadata, b'paper_distill.records': b'61'}), tmp_path/'dup2.parquet')
    with TeacherStore(tmp_path/'e') as e:
        with pytest.raises(RecordError, match=r"row 60 .*appears again \(first in row 3\) with a different record"): e.import_parquet(tmp_path/'dup2.parquet')
        assert len(e) == 0


def test_files_that_are_not_snapshots_give_clear_errors(snap, target, tmp_path):
    src, s = snap
    st, before = target
    with TeacherStore(src, readonly=True) as a: a.export_jsonl(tmp_path/'s.jsonl'); a.export_jsonl(tmp_path/'s.jsonl.gz')
    (tmp_path/'random.bin').write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path/'empty.parquet').write_bytes(b'')
    pq.write_table(pa.table({'x': [1, 2, 3]}), tmp_path/'plain.parquet')
    rewrite(s, tmp_path/'newer.parquet', lambda t: t, meta={'paper_distill.format_version': '2'})
    rewrite(s, tmp_path/'columns.parquet', lambda t: t.drop_columns(['usage']))
    cases = {'s.jsonl': 'looks like a JSONL snapshot: load it with TeacherStore.import_jsonl',
             's.jsonl.gz': 'looks like a JSONL snapshot', 'random.bin': 'is not a Parquet file', 'empty.parquet': 'is not a Parquet file',
             'plain.parquet': 'is a Parquet file but not a teacher store snapshot', 'newer.parquet': 'newer paper_distill',
             'columns.parquet': 'usage: missing instead of string'}
    for f, want in cases.items():
        with pytest.raises(RecordError, match=want): st.import_parquet(tmp_path/f)
    with pytest.raises(FileNotFoundError, match='not found'): st.import_parquet(tmp_path/'nope.parquet')
    with TeacherStore(src, readonly=True) as ro:
        with pytest.raises(PermissionError, match='opened readonly'): ro.import_parquet(s)
    assert jsonl_bytes(st, tmp_path) == before
    assert gzip.decompress((tmp_path/'s.jsonl.gz').read_bytes()) == (tmp_path/'s.jsonl').read_bytes()


def test_write_parquet_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match='from 8 to 32'): write_parquet([], tmp_path/'x.parquet', key_bytes=33)
    with pytest.raises(RecordError, match='not a store record'): write_parquet([{'key': H[0]}], tmp_path/'x.parquet')
    assert write_parquet([], tmp_path/'empty.parquet') == 0 and read_parquet_records(tmp_path/'empty.parquet') == []
