"""The package's layout: every module comes from one numbered notebook, no module imports a module of a later
notebook, modules stay small, and nothing in the repository points readers to documents outside it."""
import ast, re, shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB, NBS = ROOT/'paper_distill', ROOT/'nbs'
MAX_LINES = 450


def notebook_numbers(nbs:Path=NBS)->dict:
    "Module name → (number, letter) of the notebook that exports it (from the notebook's `default_exp`)."
    out = {}
    for p in sorted(nbs.glob('[0-9]*_*.ipynb')):
        m = re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text(encoding='utf-8'))
        n = re.match(r'(\d+)([a-z]?)_', p.name)   # 05a_openai sits between 05_gemini and 06_data
        if m: out[m.group(1)] = (int(n.group(1)), n.group(2))
    return out


def package_imports(path:Path)->set:
    "Modules of paper_distill that the file at `path` imports, anywhere in it (top level or inside functions)."
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ''
            if node.level == 1: base = mod                                   # from .x import y / from . import x
            elif node.level == 0 and mod.startswith('paper_distill'): base = mod[len('paper_distill'):].lstrip('.')
            else: continue
            if base: out.add(base.split('.')[0])
            else: out |= {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('paper_distill.')}
    return out


def backwards_imports(lib:Path=LIB, numbers:dict|None=None)->list:
    "(module, imported module) pairs where a module imports one from the same or a later notebook."
    numbers = notebook_numbers() if numbers is None else numbers
    bad = []
    for p in sorted(lib.glob('*.py')):
        if p.stem not in numbers: continue
        for dep in sorted(package_imports(p)):
            if dep in numbers and numbers[dep] >= numbers[p.stem]: bad.append((p.stem, dep))
    return bad


def test_every_module_comes_from_one_numbered_notebook():
    numbers = notebook_numbers()
    mods = {p.stem for p in LIB.glob('*.py')} - {'__init__', '_modidx'}
    assert mods - set(numbers) == set(), "modules without a numbered notebook (an old export left behind?)"
    assert set(numbers) - mods == set(), "notebooks whose module was not exported (run nbdev_export)"
    assert len(set(numbers.values())) == len(numbers), "two notebooks share a number"


def test_no_module_imports_a_later_one():
    numbers = notebook_numbers()
    assert len(numbers) >= 10
    assert backwards_imports(LIB, numbers) == []


def test_a_backwards_import_is_caught(tmp_path):
    "The check really looks: a copy of the library where `core` imports `world` (and `store` imports `teacher` inside a function) fails it."
    lib = tmp_path/'paper_distill'
    shutil.copytree(LIB, lib)
    (lib/'core.py').write_text((lib/'core.py').read_text() + '\nfrom .world import World\n')
    (lib/'store.py').write_text((lib/'store.py').read_text() + '\ndef _late():\n    from paper_distill.teacher import Teacher\n    return Teacher\n')
    assert backwards_imports(lib) == [('core', 'world'), ('store', 'teacher')]


def test_modules_stay_small():
    sizes = {p.name: len(p.read_text(encoding='utf-8').splitlines()) for p in LIB.glob('*.py') if p.name != '_modidx.py'}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}


def test_nothing_refers_to_documents_outside_the_repository():
    names = ('PAPER', 'FINDINGS', 'DESIGN', 'STACK')                     # spelled apart, so this file does not match itself
    pat = re.compile('|'.join(n + r'\.md' for n in names) + r'|\.\.' + '/shared')
    files = [p for d in ('nbs', 'paper_distill', 'tests') for p in (ROOT/d).rglob('*') if p.suffix in ('.py', '.ipynb', '.md', '.json')]
    files += [ROOT/'README.md', ROOT/'CONTRIBUTING.md']
    hits = [str(p.relative_to(ROOT)) for p in files if pat.search(p.read_text(encoding='utf-8', errors='replace'))]
    assert hits == []
