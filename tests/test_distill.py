"""The distillation loop end to end on the smoke world: it learns, it resumes after SIGKILL exactly, a replay asks the
teacher nothing even when the student's scores differ, bad input fails clearly, and the paper's whole-tower code path
runs on a CPU with a ViT-B-32 of random weights."""
import json, os, signal, subprocess, sys, textwrap, time

import pytest, torch
from safetensors.torch import load_file

import paper_distill.distill as D
from paper_distill.distill import DistillConfig, Run, distill
from paper_distill.tasks import world_task
from paper_distill.records import read_jsonl_records, write_jsonl
from paper_distill.store import TeacherStore
from paper_distill.teacher import ReplayTeacher
from paper_distill.world import WorldConfig, make_world

VOLATILE = ('seconds', 'cpu_seconds', 'teacher_hits', 'teacher_calls', 'teacher_input_tokens', 'teacher_output_tokens', 'teacher_cost_usd')


@pytest.fixture(scope='module')
def world(): return make_world(WorldConfig.smoke())


def _stable(log): return [{k: v for k, v in e.items() if k not in VOLATILE} for e in log]


def test_smoke_distillation_raises_validation_mpr(world, tmp_path):
    t = world.teacher(TeacherStore(tmp_path/'store'))
    res = distill(world_task(world), t, tmp_path/'run', DistillConfig.smoke(), progress=False)
    v = res.log.val_mpr_truth.tolist()
    assert max(v[1:]) > v[0] + 0.02, v                                  # the teacher's rankings taught it something
    assert res.best_cycle >= 1 and set(res.test) == {'test', 'heldout'}
    assert res.log.teacher_calls.iloc[1:].sum() == 3 * 60 and (res.log.groups_failed.iloc[1:] == 0).all()
    saved = load_file(str(tmp_path/'run'/'best.safetensors'))
    assert sorted(saved) == ['ln_post.bias', 'ln_post.weight', 'proj']   # only the trained parameters


RUNNER = textwrap.dedent('''
    import sys
    from paper_distill.distill import DistillConfig, distill
    from paper_distill.tasks import world_task
    from paper_distill.store import TeacherStore
    from paper_distill.world import WorldConfig, make_world
    w = make_world(WorldConfig.smoke())
    distill(world_task(w), w.teacher(TeacherStore(sys.argv[1])), sys.argv[2], DistillConfig.smoke(cycles=5, patience=5), progress=False)
    print("DONE", flush=True)
    ''')


def _run(store, folder):
    return subprocess.Popen([sys.executable, '-c', RUNNER, str(store), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    "SIGKILL in the middle of the run, resume: the same log, checkpoint and result as a run never interrupted."
    whole = _run(tmp_path/'store-a', tmp_path/'whole'); out, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    killed = 0
    for target in (2, 4):                                   # killed inside cycle 2, then inside cycle 4 (whatever the machine's speed)
        folder = tmp_path/f'killed{killed}'
        p = _run(tmp_path/f'store-k{killed}', folder)
        deadline = time.time() + 300
        while time.time() < deadline and p.poll() is None and len(Run(folder).log() if (folder/'config.json').exists() else []) < target: time.sleep(0.005)
        if p.poll() is None: os.kill(p.pid, signal.SIGKILL); killed += 1
        p.wait(timeout=60)
        n_before = len(Run(folder).log())
        assert n_before < 6, "the run finished before it could be killed"
        r = _run(tmp_path/f'store-k{killed - 1}', folder); out, err = r.communicate(timeout=600)
        assert r.returncode == 0, err[-2000:]
        assert _stable(Run(folder).log()) == _stable(Run(tmp_path/'whole').log())
        assert (folder/'best.safetensors').read_bytes() == (tmp_path/'whole'/'best.safetensors').read_bytes()
        assert json.loads((folder/'result.json').read_text()) == json.loads((tmp_path/'whole'/'result.json').read_text())
    assert killed == 2


def test_replay_with_perturbed_scores_makes_no_teacher_call(world, tmp_path, monkeypatch):
    "Recorded groups are asked again as they were: a replay never draws groups from (perturbed) scores."
    task, st = world_task(world), TeacherStore(tmp_path/'store')
    first = distill(task, world.teacher(st), tmp_path/'run', DistillConfig.smoke(), progress=False)
    orig = D._embed
    def noisy(student, feats, n, chunk=512):                # another CPU: every embedding off by ~1e-6
        E = orig(student, feats, n, chunk)
        return E + 1e-6 * torch.randn(E.shape, generator=torch.Generator().manual_seed(n))
    def refuse(*a, **k): raise AssertionError("a replay drew groups from scores")
    monkeypatch.setattr(D, '_embed', noisy); monkeypatch.setattr(D, '_sample', refuse)
    rep = ReplayTeacher.like(world.teacher(st))             # answers only from the store: a miss would be a failure
    res = distill(task, rep, tmp_path/'replay', DistillConfig.smoke(), replay_from=tmp_path/'run', progress=False)
    assert rep.stats['calls'] == 0 and rep.stats['failures'] == 0 and rep.stats['hits'] == rep.stats['requests'] > 0
    assert (res.log.groups_failed.iloc[1:] == 0).all()
    assert res.log.val_mpr_truth.round(2).tolist() == first.log.val_mpr_truth.round(2).tolist()
    for c in (1, 2, 3):                                      # the replay recorded the same requests
        assert json.loads(Run(tmp_path/'replay').groups_path(c).read_text())['keys'] == json.loads(Run(tmp_path/'run').groups_path(c).read_text())['keys']


def test_bad_input_fails_clearly(world, tmp_path):
    task, st = world_task(world), TeacherStore(tmp_path/'store')
    distill(task, world.teacher(st), tmp_path/'run', DistillConfig.smoke(cycles=1), progress=False)
    with pytest.raises(ValueError, match=r"another config \(differs in \['lr'\]\)"):
        distill(task, world.teacher(st), tmp_path/'run', DistillConfig.smoke(cycles=1, lr=1e-2), progress=False)
    other = world.teacher(st, temperature=0.1)              # another teacher: the recorded requests no longer match
    with pytest.raises(RuntimeError, match='store keys differ'):
        distill(task, other, tmp_path/'replay', DistillConfig.smoke(cycles=1), replay_from=tmp_path/'run', progress=False)
    with pytest.raises(FileNotFoundError, match='no run in'): Run(tmp_path/'nowhere')
    with pytest.raises(ValueError, match='n_eval_teacher > 0'): DistillConfig(select_on='teacher')
    with pytest.raises(TypeError, match='DistillConfig.cycles: expected int'): DistillConfig.from_json('{"cycles": "2"}')


def test_a_failed_teacher_request_drops_one_group_not_the_run(world, tmp_path):
    "A replay teacher missing some answers fails those requests only; the cycle trains on the rest and says how many failed."
    task, st = world_task(world), TeacherStore(tmp_path/'store')
    distill(task, world.teacher(st), tmp_path/'run', DistillConfig.smoke(cycles=1), progress=False)
    g = json.loads(Run(tmp_path/'run').groups_path(1).read_text())
    partial = TeacherStore(tmp_path/'partial')
    snap = tmp_path/'snap.jsonl'; st.export_jsonl(snap)
    write_jsonl([r for r in read_jsonl_records(snap) if r['key'] not in g['keys'][50:]], tmp_path/'part.jsonl')
    partial.import_jsonl(tmp_path/'part.jsonl')
    rep = ReplayTeacher.like(world.teacher(partial))
    res = distill(task, rep, tmp_path/'replay', DistillConfig.smoke(cycles=1), replay_from=tmp_path/'run', progress=False)
    assert res.log.groups_failed.iloc[1] == 10 and res.log.train_groups.iloc[1] == 50 - 3   # 3 of the 50 held out


def test_paper_profile_code_path_runs_on_cpu(world, tmp_path):
    "The paper's recipe through the same loop: ViT-B-32 (random weights) at 224 px, whole image tower, pairwise tournaments."
    from paper_distill.student import StudentConfig
    cfg = DistillConfig.paper(student=StudentConfig(model='ViT-B-32', train='all', image_batch_size=32), cycles=2, groups_first=20,
                              groups_per_cycle=20, batch_groups=10, grad_accum=1, n_eval=8, n_eval_teacher=4)
    res = distill(world_task(world), world.teacher(TeacherStore(tmp_path/'store')), tmp_path/'run', cfg, progress=False)
    assert list(res.log.cycle) == [0, 1, 2] and res.log.val_mpr_teacher.notna().all()
    sd = load_file(str(tmp_path/'run'/'best.safetensors'))
    assert any(k.startswith('transformer.resblocks.0.') for k in sd) and 'conv1.weight' in sd   # the whole tower trained
    print(res.log[['cycle', 'val_mpr_teacher', 'loss', 'cpu_seconds']].round(3).to_string())


def test_distillation_with_the_real_gemini_client_against_a_local_server(world, tmp_path, monkeypatch):
    "The live-teacher path: GeminiTeacher (google-genai) against the local Gemini stand-in, images sent as PNG, answers stored."
    from paper_distill.fake_gemini import FakeGemini
    from paper_distill.gemini import GeminiTeacher
    monkeypatch.setenv('GEMINI_API_KEY', 'local-test-key')
    with FakeGemini(expected_key='local-test-key') as srv:
        t = GeminiTeacher(tmp_path/'store', model='gemini-test', base_url=srv.url, concurrency=4)
        res = distill(world_task(world), t, tmp_path/'run', DistillConfig.smoke(cycles=1, groups_first=20), progress=False)
        assert srv.count(200) == 20 and t.stats['calls'] == 20 and len(t.store) == 20
        assert res.log.groups_failed.iloc[1] == 0 and res.log.teacher_input_tokens.iloc[1] > 0
        body = srv.answered()[0]['body']
        assert sum('inlineData' in p for p in body['contents'][0]['parts']) == 5   # five product photos in one request
