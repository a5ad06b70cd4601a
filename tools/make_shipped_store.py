"""Make the files the mini profile ships: its teacher store snapshot and its runs' recorded groups.

Usage: python tools/make_shipped_store.py [--workers 2] [--work DIR]

Runs `paper_distill reproduce`'s mini profile with the simulated teacher into an empty store (every request the
reproduction asks, answered and stored: about 150,000 records, 20-30 minutes on 2 cores), then writes
paper_distill/data/stores/mini.parquet (the store, `TeacherStore.export_parquet`) and
paper_distill/data/stores/mini-groups.parquet (the groups every distillation run asked, `experiments.write_groups`,
so that a replay on another machine re-asks exactly them). Run it again only when the requests change (the world, the
recipe, the prompts or the teacher), and commit both files; `tests/test_packaging.py` checks their size budget.
"""
import argparse, shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--workers', type=int, default=2, help='worker processes')
    ap.add_argument('--work', default='/tmp/paper_distill_make_store', help='scratch folder (store and run cache; emptied first)')
    a = ap.parse_args()
    from paper_distill.experiments import Profile, run_profile, write_groups
    from paper_distill.store import TeacherStore
    import paper_distill.snapshots  # noqa: F401  (TeacherStore.export_parquet)
    work = Path(a.work); shutil.rmtree(work, ignore_errors=True)
    res = run_profile(Profile.mini(), 'simulated', work/'store', work/'cache', workers=a.workers)
    out = ROOT/'paper_distill'/'data'/'stores'
    n = TeacherStore(work/'store', readonly=True).export_parquet(out/'mini.parquet')
    write_groups(res, out/'mini-groups.parquet')
    print(f"{n} records → {out/'mini.parquet'} ({(out/'mini.parquet').stat().st_size / 2**20:.2f} MiB); "
          f"groups → {out/'mini-groups.parquet'} ({(out/'mini-groups.parquet').stat().st_size / 2**20:.2f} MiB)")
