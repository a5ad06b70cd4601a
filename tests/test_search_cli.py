"""`paper_distill search` as a user runs it: the mini world's catalog with a shipped mini student from a shell, a grid
written, the index reused; bad input stops with a message that says what to do."""
import os, subprocess, sys

import pytest
from PIL import Image

from paper_distill.cli import main


def _ids(out:str)->list:
    return [next(t for t in line.split() if t.startswith('hm-')) for line in out.splitlines() if ' hm-' in line]


def test_search_the_mini_world_and_write_a_grid(tmp_path, monkeypatch, capsys):
    home = tmp_path/'home'
    personas = tmp_path/'personas.txt'; personas.write_text('a retired teacher who loves bright red coats\n\na teenage skateboarder who wears black\n')
    cmd = [sys.executable, '-c', 'import sys; from paper_distill.cli import main; sys.exit(main())', 'search',
           '--personas_file', str(personas), '--k', '5', '--grid', str(tmp_path/'grid.png'), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, 'PAPER_DISTILL_HOME': str(home), 'MPLBACKEND': 'Agg'})
    assert r.returncode == 0, r.stderr[-2000:]
    rows = _ids(r.stdout)
    assert len(rows) == 10                                                 # 5 items for each of the 2 personas (the blank line skipped)
    im = Image.open(tmp_path/'grid.png'); assert im.size[0] > 500 and im.size[1] > 200
    assert len(list((home/'indexes').iterdir())) == 1                      # the catalog's index, kept for next time
    monkeypatch.setenv('PAPER_DISTILL_HOME', str(home))
    assert main(['search', '--persona', 'a teenage skateboarder who wears black', '--k', '5', '--grid', '']) == 0
    assert _ids(capsys.readouterr().out) == rows[5:]                       # the same answer from the saved index


@pytest.mark.parametrize('args,message', [
    (['--personas_file', 'no/such/file.txt'], 'personas file not found'),
    (['--persona', '   '], 'is empty'),
    ([], 'no persona given'),
    (['--persona', 'a nurse', '--profile', 'smoke', '--catalog', 'ikea'], "unknown mini world catalog 'ikea'"),
    (['--persona', 'a nurse', '--k', '0'], '--k must be at least 1'),
])
def test_bad_input_says_what_to_do(args, message, tmp_path, monkeypatch):
    monkeypatch.setenv('PAPER_DISTILL_HOME', str(tmp_path))
    with pytest.raises(SystemExit, match=message): main(['search', *args])


def test_an_index_of_another_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv('PAPER_DISTILL_HOME', str(tmp_path))
    ix = tmp_path/'ix'
    assert main(['search', '--profile', 'smoke', '--persona', 'a nurse', '--k', '2', '--index', str(ix), '--grid', '']) == 0
    with pytest.raises(SystemExit, match=r"does not match the model: expected model 'mini:generic@\w+' .* found 'mini:fashion@\w+'"):
        main(['search', '--profile', 'smoke', '--persona', 'a nurse', '--student', 'mini:generic', '--index', str(ix), '--grid', ''])
