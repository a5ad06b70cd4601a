"""`paper_distill reproduce` end to end on the smoke profile, as a user runs it: every artefact, byte-identical reruns,
a replay that fails on a deleted record and comes back after the simulated teacher refills it, and bad input."""
import hashlib, os, subprocess, sys
from pathlib import Path

import pytest

from paper_distill.store import TeacherStore

ARTEFACTS = ['table1.md', 'table1.csv', 'curves.png', 'curves.csv', 'histogram.png', 'histogram.csv', 'topk.png', 'topk.csv',
             'inference.png', 'training.png', 'heldout.md', 'heldout.csv', 'heldout.png', 'cost.md', 'cost.csv',
             'inflation.md', 'inflation.csv', 'inflation.png', 'audit.md', 'audit.csv', 'audit.png', 'tourneys.md', 'tourneys.csv', 'tourneys.png']


def cli(tmp: Path, *args, check=True) -> subprocess.CompletedProcess:
    "Run `paper_distill <args>` in a fresh process with its own home folder."
    env = {**os.environ, 'PAPER_DISTILL_HOME': str(tmp/'home'), 'MPLBACKEND': 'Agg'}
    p = subprocess.run([sys.executable, '-c', 'import sys; from paper_distill.cli import main; sys.exit(main())', *map(str, args)],
                       capture_output=True, text=True, env=env, timeout=900)
    if check: assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def digests(folder: Path) -> dict:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir())}


def smoke(tmp, teacher, out, check=True):
    return cli(tmp, 'reproduce', '--profile', 'smoke', '--teacher', teacher, '--store', tmp/'store', '--out', tmp/out,
               '--cache', tmp/'cache', '--workers', 2, '--quiet', check=check)


@pytest.fixture(scope='module')
def first(tmp_path_factory):
    "A smoke reproduction with the simulated teacher filling an empty store."
    tmp = tmp_path_factory.mktemp('reproduce')
    p = smoke(tmp, 'simulated', 'figures')
    return tmp, p


def test_every_artefact(first):
    tmp, p = first
    missing = [a for a in ARTEFACTS if not (tmp/'figures'/a).is_file()]
    assert not missing, missing
    assert '2 run, 0 from the run cache' in p.stdout and 'live calls' in p.stdout
    t1 = (tmp/'figures'/'table1.md').read_text()
    assert 'Nemotron' in t1 and 'OpenCharacter' in t1 and 'H&M' in t1


def test_deleted_record_fails_replay_then_simulated_refills_it(first):
    tmp, _ = first
    before = digests(tmp/'figures')
    st = TeacherStore(tmp/'store'); n = len(st)
    key = sorted(st.keys())[n // 2]
    del st._cache[key]; st.close()
    p = smoke(tmp, 'replay', 'figures-miss', check=False)
    assert p.returncode != 0
    err = p.stderr + p.stdout
    assert 'not in the store' in err and '--teacher simulated' in err and 'request' in err, err[-2000:]
    assert 'Traceback' not in err
    assert len(TeacherStore(tmp/'store', readonly=True)) == n - 1          # nothing stored was lost, nothing half-written
    fill = smoke(tmp, 'simulated', 'figures-fill')
    assert ' 1 live calls' in fill.stdout, fill.stdout
    assert key in TeacherStore(tmp/'store', readonly=True)
    again = smoke(tmp, 'replay', 'figures-replay')                        # the full store again: recomputed from replayed answers
    assert ' 0 live calls' in again.stdout
    assert digests(tmp/'figures-replay') == before                        # tables and figures byte-identical


def test_bad_input(tmp_path):
    p = cli(tmp_path, 'reproduce', '--profile', 'paper', check=False)
    assert p.returncode != 0 and 'datasets' in p.stderr and 'Traceback' not in p.stderr
    p = cli(tmp_path, 'reproduce', '--profile', 'tiny', check=False)
    assert p.returncode != 0 and "use 'smoke', 'mini' or 'paper'" in p.stderr
    p = cli(tmp_path, 'reproduce', '--profile', 'smoke', '--only', 'tabel1', check=False)
    assert p.returncode != 0 and 'unknown artefact' in p.stderr
    p = cli(tmp_path, 'reproduce', '--profile', 'smoke', '--teacher', 'oracle', check=False)
    assert p.returncode != 0 and 'unknown teacher' in p.stderr
    p = cli(tmp_path, 'reproduce', '--profile', 'paper', '--data', tmp_path/'nope.json', check=False)
    assert p.returncode != 0 and 'not found' in p.stderr


def test_help_explains():
    p = subprocess.run([sys.executable, '-c', 'import sys; from paper_distill.cli import main; sys.exit(main())', 'reproduce', '--help'],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0
    for opt in ('--profile', '--teacher', '--store', '--out', '--seeds', '--workers', '--data'): assert opt in p.stdout
