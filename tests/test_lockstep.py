"""Runs in lockstep: a kill at any moment (also between two runs' log entries of one cycle) resumes to exactly the
uninterrupted lockstep result; a run that stops early leaves the others going; recipes that cannot share a step are
refused with the reason."""
import json, subprocess, sys, textwrap

import pytest

from paper_distill.distill import DistillConfig, Run, distill
from paper_distill.lockstep import distill_lockstep
from paper_distill.store import TeacherStore
from paper_distill.tasks import world_task
from paper_distill.world import WorldConfig, make_world

VOLATILE = ('seconds', 'cpu_seconds', 'teacher_hits', 'teacher_calls', 'teacher_input_tokens', 'teacher_output_tokens', 'teacher_cost_usd')
NAMES = ('pref-s0', 'pref-s1', 'unif-pl')

RUNNER = textwrap.dedent('''
    import os, signal, sys
    from pathlib import Path
    from paper_distill.distill import DistillConfig, Run
    from paper_distill.lockstep import distill_lockstep
    from paper_distill.tasks import world_task
    from paper_distill.store import TeacherStore
    from paper_distill.world import WorldConfig, make_world
    store, out, kill_run, kill_cycle = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    orig = Run.append
    def append(self, entry):                      # SIGKILL just before run `kill_run` logs cycle `kill_cycle`
        if self.folder.name == kill_run and entry['cycle'] == kill_cycle: os.kill(os.getpid(), signal.SIGKILL)
        orig(self, entry)
    Run.append = append
    w = make_world(WorldConfig.smoke())
    cfg = DistillConfig.smoke(cycles=5, patience=5)
    cfgs = [cfg, cfg.replace(seed=1), cfg.replace(sampler=cfg.sampler.replace(kind='uniform'), loss='pl', scale=10.0)]
    distill_lockstep(world_task(w), w.teacher(TeacherStore(store)), [out/n for n in ('pref-s0', 'pref-s1', 'unif-pl')], cfgs, progress=False)
    print("DONE", flush=True)
    ''')


def _run(store, out, kill_run='-', kill_cycle=-1):
    return subprocess.run([sys.executable, '-c', RUNNER, str(store), str(out), kill_run, str(kill_cycle)], capture_output=True, text=True, timeout=600)


def _stable(log): return [{k: v for k, v in e.items() if k not in VOLATILE} for e in log]


@pytest.fixture(scope='module')
def world(): return make_world(WorldConfig.smoke())


def test_killed_lockstep_resumes_to_the_uninterrupted_result(tmp_path):
    whole = _run(tmp_path/'store', tmp_path/'whole')
    assert whole.returncode == 0 and 'DONE' in whole.stdout, whole.stderr[-2000:]
    for i, (kill_run, kill_cycle) in enumerate([('pref-s1', 2), ('pref-s0', 4), ('unif-pl', 3)]):
        out = tmp_path/f'killed{i}'
        k = _run(tmp_path/'store', out, kill_run, kill_cycle)
        assert k.returncode == -9, (k.returncode, k.stderr[-2000:])                 # it was killed, not finished
        lens = [len(Run(out/n).log()) for n in NAMES]
        if kill_run != 'pref-s0': assert len(set(lens)) == 2, lens                  # killed between two runs' entries of a cycle
        r = _run(tmp_path/'store', out)
        assert r.returncode == 0, r.stderr[-2000:]
        for n in NAMES:
            assert _stable(Run(out/n).log()) == _stable(Run(tmp_path/'whole'/n).log()), n
            assert (out/n/'best.safetensors').read_bytes() == (tmp_path/'whole'/n/'best.safetensors').read_bytes(), n
            assert json.loads((out/n/'result.json').read_text()) == json.loads((tmp_path/'whole'/n/'result.json').read_text()), n


def test_a_run_that_stops_early_leaves_the_others_going(world, tmp_path):
    task, t = world_task(world), world.teacher(TeacherStore(tmp_path/'store'))
    cfg = DistillConfig.smoke(cycles=2)
    a, b = distill_lockstep(task, t, [tmp_path/'a', tmp_path/'b'], [cfg, cfg.replace(cycles=4, seed=1)], progress=False)
    assert a.log.cycle.tolist() == [0, 1, 2] and b.log.cycle.tolist() == [0, 1, 2, 3, 4]
    assert b.log.val_mpr_truth.iloc[3:].max() != b.log.val_mpr_truth.iloc[2]                 # it went on training alone
    again = distill(task, t, tmp_path/'a', progress=False)                                     # an ordinary run folder, already finished
    assert again.best_cycle == a.best_cycle and again.test == a.test


def test_recipes_that_cannot_share_a_step_are_refused(world, tmp_path):
    task, t = world_task(world), world.teacher(TeacherStore(tmp_path/'store'))
    cfg = DistillConfig.smoke(cycles=1)
    with pytest.raises(ValueError, match=r"differs from run 0's in \['lr'\]"):
        distill_lockstep(task, t, [tmp_path/'a', tmp_path/'b'], [cfg, cfg.replace(lr=1e-2)], progress=False)
    with pytest.raises(ValueError, match='heads only'):
        distill_lockstep(task, t, [tmp_path/'c'], [cfg.replace(student=cfg.student.replace(train='last:1'))], progress=False)
    with pytest.raises(ValueError, match='steps > 0'):
        distill_lockstep(task, t, [tmp_path/'d'], [cfg.replace(steps=0)], progress=False)
    with pytest.raises(ValueError, match='share a folder'):
        distill_lockstep(task, t, [tmp_path/'e', tmp_path/'e'], [cfg, cfg], progress=False)
