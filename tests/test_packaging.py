"Packaging: environment.yml matches settings.ini, a non-editable install works, a notebook runs in a real kernel."
import configparser, os, shlex, subprocess, sys, sysconfig, venv
from pathlib import Path
import pytest, yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

def _settings():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT/'settings.ini', encoding='utf-8')
    return cfg['DEFAULT']

def _norm(spec:str)->str:
    r = Requirement(spec)
    return f"{r.name.lower().replace('_', '-')}{r.specifier}"

def test_environment_yml_names_the_settings_requirements():
    "The conda env's pip section lists exactly settings.ini's requirements, dev and faiss requirements, and Python 3.11."
    s = _settings()
    want = {_norm(o) for k in ('requirements', 'dev_requirements', 'faiss_requirements') for o in shlex.split(s.get(k, ''))}
    env = yaml.safe_load((ROOT/'environment.yml').read_text())
    deps = env['dependencies']
    assert 'python=3.11' in deps, "environment.yml must pin python=3.11"
    pip = next(d['pip'] for d in deps if isinstance(d, dict) and 'pip' in d)
    got = {_norm(o) for o in pip if not o.startswith('-e')}
    assert got == want, f"only in environment.yml: {sorted(got-want)}; only in settings.ini: {sorted(want-got)}"
    assert '-e .' in pip
    assert s['min_python'] == '3.11'

def test_readme_in_step_with_index():
    "README.md is generated from nbs/index.ipynb (tools/make_readme.py) and is not stale."
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout

def test_non_editable_install_imports(tmp_path):
    """`pip install .` (a built wheel, not editable) into a fresh venv, then `import paper_distill.store` works.
    The fresh venv reuses this environment's installed dependencies through a .pth file, so no download is needed;
    the package itself is installed from the wheel with --no-deps."""
    whl = tmp_path/'whl'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(whl), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheels = list(whl.glob('paper_distill-*.whl')); assert len(wheels) == 1
    env = tmp_path/'venv'
    venv.EnvBuilder(with_pip=False).create(env)
    py = env/'bin'/'python'
    site = Path(subprocess.run([str(py), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                               capture_output=True, text=True, check=True).stdout.strip())
    # dependencies from this environment, but NOT its editable paper_distill
    (site/'_deps.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', str(site), str(wheels[0])], check=True)
    code = ("import paper_distill, paper_distill.store, paper_distill.core as c; "
            "print(paper_distill.__file__); print(c.package_data_dir().is_dir()); "
            "print(sum(f.stat().st_size for f in (c.package_data_dir()/'stores').glob('mini*.parquet')))")
    out = subprocess.run([str(py), '-c', code], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != 'PYTHONPATH'})
    assert out.returncode == 0, out.stderr
    path, has_data, store_bytes = out.stdout.split()
    assert Path(path).is_relative_to(site), f"imported {path}, not the wheel install in {site}"
    assert has_data == 'True', "package data folder missing from the wheel"
    assert 0 < int(store_bytes) <= 10 * 2**20, f"the shipped mini store and groups are {int(store_bytes) / 2**20:.1f} MiB; they must stay within 10 MiB"

def test_shipped_store_is_a_valid_snapshot():
    "The mini profile's shipped teacher store: a Parquet snapshot (checked cheaply: its metadata) of the mini world's teacher."
    import pyarrow.parquet as pq
    p = ROOT/'paper_distill'/'data'/'stores'/'mini.parquet'
    md = pq.read_metadata(p)
    assert md.num_rows > 100_000 and p.stat().st_size <= 10 * 2**20
    req = pq.read_table(p, columns=['request']).column('request').combine_chunks()
    assert set(req.field('task').unique().to_pylist()) == {'rank', 'caption'}
    assert all(x.startswith('simulated:world-') for x in req.field('teacher_id').unique().to_pylist())

def test_shipped_groups_match_the_mini_recipe():
    "The runs' recorded groups ship beside the store, for the mini profile's recipe and seeds (else a replay would not use them)."
    import pyarrow.parquet as pq
    from paper_distill.experiments import Profile, _recipe
    p = ROOT/'paper_distill'/'data'/'stores'/'mini-groups.parquet'
    pf = pq.ParquetFile(p)
    assert pf.metadata.metadata[b'paper_distill.recipe'].decode() == _recipe(Profile.mini())
    t = pf.read(columns=['persona_set', 'catalog', 'seed']).to_pylist()
    prof = Profile.mini()
    assert {(r['persona_set'], r['catalog'], r['seed']) for r in t} == {(*pair, s) for pair in prof.pairs for s in prof.seeds}

@pytest.mark.parametrize('nb', ['00_core.ipynb'])
def test_notebook_runs_in_real_kernel(nb):
    "A notebook executes top to bottom through a real Jupyter kernel (nbclient), as a reader runs it."
    import nbformat
    from nbclient import NotebookClient
    book = nbformat.read(ROOT/'nbs'/nb, as_version=4)
    client = NotebookClient(book, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(ROOT/'nbs')}})
    client.execute()
    errors = [o for c in book.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.get('output_type') == 'error']
    assert not errors
    assert sum(1 for c in book.cells if c.cell_type == 'code' and c.get('execution_count')) >= 10
