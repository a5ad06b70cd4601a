"""Write README.md from nbs/index.ipynb without Quarto (which is not available here).

Usage: python tools/make_readme.py          # write README.md
       python tools/make_readme.py --check  # exit 1 if README.md is stale
Markdown cells are copied; code cells become ```python blocks followed by their text outputs;
cells flagged `#| hide` are left out, as nbdev_readme would. A markdown line `<!-- include: figures/x.md -->` is
replaced by that file's text (the regenerated tables), so README shows the numbers `paper_distill reproduce` wrote.
"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]

INCLUDE = re.compile(r'^<!-- include: (\S+) -->$', re.M)

def include(md: str) -> str:
    "Replace include markers by the files they name (paths relative to the repository root)."
    def sub(m):
        f = ROOT/m.group(1)
        if not f.is_file(): sys.exit(f"{m.group(0)}: {f} does not exist; run `paper_distill reproduce` first")
        return f.read_text(encoding='utf-8').strip('\n')
    return INCLUDE.sub(sub, md)

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    "Render the index notebook as GitHub markdown."
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for cell in nb.cells:
        src = cell.source.strip('\n')
        if cell.cell_type == 'markdown': parts.append(include(src))
        elif cell.cell_type == 'code':
            lines = src.splitlines()
            if any(l.strip().replace(' ', '') in ('#|hide', '#|include:false') for l in lines): continue
            code = '\n'.join(l for l in lines if not l.lstrip().startswith('#|')).strip('\n')
            if code: parts.append(f"```python\n{code}\n```")
            outs = []
            for o in cell.get('outputs', []):
                if o.get('output_type') == 'stream': outs.append(o.get('text', ''))
                elif 'data' in o and 'text/plain' in o['data']: outs.append(o['data']['text/plain'])
            out = ''.join(outs).strip('\n')
            if out: parts.append("    " + out.replace('\n', '\n    '))
    return '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text = render()
    readme = ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit("README.md is stale: run `python tools/make_readme.py` after editing nbs/index.ipynb")
        print("README.md is up to date")
    else:
        readme.write_text(text, encoding='utf-8'); print(f"wrote {readme}")
