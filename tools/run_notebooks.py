"""Execute notebooks in place through a real Jupyter kernel (nbclient), keeping their outputs for readers.

Usage: python tools/run_notebooks.py nbs/00_core.ipynb [more.ipynb ...] [--slow]
Cells flagged `#| slow`, `#| notest` or `#| eval: false` are skipped (their old outputs are kept) unless --slow is
given (eval: false cells are never run). Run `nbdev_clean` afterwards, as before any commit.
"""
import re, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

FLAG = re.compile(r'^\s*#\|\s*(slow|notest|eval:\s*false)\s*$', re.M)

def skipped(cell, slow:bool)->bool:
    "Whether a code cell is left alone."
    flags = {m.replace(' ', '') for m in FLAG.findall(cell.source)}
    return 'eval:false' in flags or (not slow and bool(flags & {'slow', 'notest'}))

def run(path:Path, slow:bool=False)->float:
    "Execute one notebook in place; return seconds taken."
    nb = nbformat.read(path, as_version=4)
    keep = {i: c for i, c in enumerate(nb.cells) if c.cell_type == 'code' and skipped(c, slow)}
    for i, c in keep.items(): c.cell_type, c.metadata['_was_code'] = 'raw', True   # nbclient skips raw cells
    t = time.time()
    NotebookClient(nb, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    for i, c in keep.items():
        c.metadata.pop('_was_code'); c.cell_type = 'code'
        c.setdefault('outputs', []); c.setdefault('execution_count', None)
    nbformat.write(nb, path)
    return time.time() - t

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    for p in args: print(f"{p}: {run(Path(p), '--slow' in sys.argv):.1f} s", flush=True)
