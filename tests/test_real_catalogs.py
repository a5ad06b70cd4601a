"""Catalogs and persona files as users have them, on files made here: photos in every PIL mode, EXIF-rotated, with
alpha, 16-bit, oversized; tables in other encodings and separators, with blank lines and cells, broken JSONL; the same
photo under several ids, met by samplers and a k-way tournament; and the English filter on short personas."""
import logging, shutil, warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from paper_distill.core import hash_image
from paper_distill.data import Catalog, personas_from_table, read_table, warn_non_latin
from paper_distill.prompts import ImageRef, ImageTooLarge, load_image, open_image
from paper_distill.sampling import PreferenceSampler, UncertaintySampler, UniformSampler
from paper_distill.sources import is_english, read_opencharacter
from paper_distill.teacher import ReplayTeacher, SimulatedTeacher
from paper_distill.tournament import TournamentError, n_calls, run_tournaments, tournament

WHITE = (255, 255, 255)


def _exif(orientation:int)->bytes:
    ex = Image.Exif(); ex[0x0112] = orientation; return ex.tobytes()


@pytest.fixture
def shop(tmp_path):
    "A folder of photos as a shop has them, one per PIL mode or quirk, with a CSV naming them."
    d = tmp_path/'shop'; d.mkdir()
    cut = Image.new('RGBA', (10, 20), (0, 0, 0, 0)); cut.paste((0, 0, 200, 255), (3, 5, 7, 15))
    cut.save(d/'cutout.png')                                                            # transparent cut-out
    pal = Image.new('P', (10, 10), 0); pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762); pal.paste(1, (2, 2, 8, 8))
    pal.save(d/'palette.png', transparency=0)                                          # palette PNG, colour 0 transparent
    la = Image.new('LA', (8, 8), (60, 0)); la.paste((60, 255), (4, 0, 8, 8)); la.save(d/'grey_alpha.png')
    Image.fromarray(np.array([[0, 1000, 30000, 65535]] * 4, np.uint16)).save(d/'deep.png')   # 16-bit grey
    wide = Image.new('RGB', (40, 20), (0, 0, 255)); wide.paste((255, 0, 0), (0, 0, 10, 20))
    wide.save(d/'phone.jpg', exif=_exif(6), quality=95)                                # stored lying down, tag: rotate 90°
    Image.new('CMYK', (8, 8), (0, 255, 255, 0)).save(d/'print.jpg')                    # CMYK red
    Image.new('1', (8, 8), 1).save(d/'bilevel.png')
    Image.new('L', (8, 8), 77).save(d/'grey.png')
    plain = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 9, 3), dtype=np.uint8)); plain.save(d/'plain.png')
    plain.save(d/'plain.jpg', quality=90)
    files = sorted(p.name for p in d.iterdir())
    pd.DataFrame({'id': [f.replace('.', '_') for f in files], 'file': files}).to_csv(tmp_path/'items.csv', index=False)
    return d, tmp_path/'items.csv'


# ---------------------------------------------------------------- photos
def test_every_kind_of_photo_reads_as_a_viewer_sees_it(shop):
    d, csv = shop
    cat = Catalog.from_folder(d, csv)
    im = {k: cat.image(k) for k in cat.ids}
    assert all(v.mode == 'RGB' for v in im.values())
    assert im['cutout_png'].getpixel((0, 0)) == WHITE and im['cutout_png'].getpixel((5, 10)) == (0, 0, 200)
    assert Image.open(d/'cutout.png').convert('RGB').getpixel((0, 0)) == (0, 0, 0)      # what a bare convert gave
    assert im['palette_png'].getpixel((0, 0)) == WHITE and im['palette_png'].getpixel((4, 4)) == (200, 0, 0)
    assert im['grey_alpha_png'].getpixel((0, 0)) == WHITE and im['grey_alpha_png'].getpixel((6, 0)) == (60, 60, 60)
    assert Image.open(d/'deep.png').mode == 'I;16'
    assert [im['deep_png'].getpixel((x, 0))[0] for x in range(4)] == [0, 4, 117, 255]    # scaled, not clipped to white
    assert im['phone_jpg'].size == (20, 40)                                            # upright: portrait
    r, g, b = im['phone_jpg'].getpixel((10, 2)); assert r > 200 and b < 60              # the red end is now on top
    r, g, b = im['print_jpg'].getpixel((4, 4)); assert r > 230 and g < 30 and b < 30
    assert im['bilevel_png'].getpixel((0, 0)) == WHITE and im['grey_png'].getpixel((0, 0)) == (77, 77, 77)
    # ordinary photos keep the pixels, hence the content hash (the store key), that convert('RGB') gave
    for f in ('plain.png', 'plain.jpg', 'grey.png', 'bilevel.png', 'print.jpg'):
        assert cat.hashes()[cat.index_of(f.replace('.', '_'))] == hash_image(Image.open(d/f).convert('RGB'))
    assert cat.hashes()[cat.index_of('plain_png')] == hash_image(d/'plain.png')
    assert cat.duplicates() == []


def test_teacher_sees_the_same_pixels(shop):
    d, _ = shop
    assert load_image(d/'cutout.png').getpixel((0, 0)) == WHITE
    assert load_image(ImageRef('x', str(d/'phone.jpg'))).size == (20, 40)
    arr = np.asarray(Image.open(d/'plain.png'))
    assert open_image(arr).tobytes() == arr.tobytes()


@pytest.mark.filterwarnings('ignore::PIL.Image.DecompressionBombWarning')     # PIL warns above the limit; we refuse
def test_oversized_image_refused_and_skipped(shop, monkeypatch, caplog):
    d, csv = shop
    Image.new('RGB', (30, 30), 'green').save(d/'huge.png')                              # 900 pixels: above the limit set below
    Image.new('RGB', (100, 100), 'green').save(d/'bomb.png')                            # 10,000: past twice the limit, where PIL itself refuses
    pd.concat([pd.read_csv(csv), pd.DataFrame({'id': ['huge', 'bomb'], 'file': ['huge.png', 'bomb.png']})]).to_csv(csv, index=False)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 850)     # the 40×20 phone photo (800) still passes
    cat = Catalog.from_folder(d, csv)
    with pytest.raises(ImageTooLarge, match=r"image of item 'huge' is too large \(30×30 = 900 pixels; PIL's limit "
                                            r"Image.MAX_IMAGE_PIXELS is 850\); downscale the file, or raise PIL.Image.MAX_IMAGE_PIXELS.*skip_bad=True"):
        cat.image('huge')
    with pytest.raises(ImageTooLarge, match="image of item 'bomb' is too large"): cat.image('bomb')
    with pytest.raises(ImageTooLarge, match="huge"): cat.verify()
    with caplog.at_level(logging.WARNING, logger='paper_distill.data'):
        good = Catalog.from_folder(d, csv, skip_bad=True)
    assert [k for k, _ in good.skipped] == ['huge', 'bomb'] and len(good) == len(cat) - 2
    assert not any('skip_bad' in m for _, m in good.skipped)                            # no advice to do what is being done
    msg = [r.getMessage() for r in caplog.records if 'left out' in r.getMessage()]
    assert len(msg) == 1 and "left out 2 of" in msg[0] and 'huge' in msg[0] and 'bomb' in msg[0]


def test_skip_bad_lists_missing_and_corrupt(shop, caplog):
    d, csv = shop
    (d/'grey.png').write_bytes(b'not a png'); (d/'bilevel.png').unlink()
    with caplog.at_level(logging.WARNING, logger='paper_distill.data'):
        good = Catalog.from_folder(d, csv, skip_bad=True)
    assert sorted(k for k, _ in good.skipped) == ['bilevel_png', 'grey_png']
    assert any('left out 2 of 10 images' in r.getMessage() for r in caplog.records)
    with pytest.raises(FileNotFoundError, match="item 'bilevel_png' not found.*fix the path in the table or remove the item; or build the catalog with skip_bad=True"):
        Catalog.from_folder(d, csv).verify()


# ---------------------------------------------------------------- tables
ROWS = [('p1', 'A nurse from Zürich'), ('p2', 'A chef in Bogotá'), ('p3', 'A café owner')]


def _csv(rows=ROWS, sep=',', head='id,persona'):
    return head.replace(',', sep) + '\n' + ''.join(f'{i}{sep}{t}\n' for i, t in rows)


@pytest.mark.parametrize('encoding', ['latin-1', 'cp1252'])
def test_other_encodings_named_by_line(tmp_path, encoding):
    f = tmp_path/'personas.csv'; f.write_bytes(_csv().encode(encoding))
    with pytest.raises(ValueError, match=rf"{f}, line 2: not utf-8 text .*pass the encoding the file was saved in, e.g. encoding='latin-1'"):
        personas_from_table(f, id_col='id')
    ps = personas_from_table(f, id_col='id', encoding=encoding)
    assert ps.texts == [t for _, t in ROWS] and ps.ids == ['p1', 'p2', 'p3']


def test_utf16_found_by_its_byte_order_mark(tmp_path):
    f = tmp_path/'personas.csv'; f.write_text(_csv(), encoding='utf-16')
    assert personas_from_table(f, id_col='id').texts == [t for _, t in ROWS]
    t = tmp_path/'personas.tsv'; t.write_text(_csv(sep='\t'), encoding='utf-16')              # Excel's "Unicode text"
    assert personas_from_table(t, id_col='id').texts == [t for _, t in ROWS]


def test_tsv_by_extension_or_sep(tmp_path):
    rows = [('p1', 'A nurse, who hikes'), ('p2', 'A chef')]
    (tmp_path/'p.tsv').write_text(_csv(rows, '\t'))
    assert personas_from_table(tmp_path/'p.tsv', id_col='id').texts == ['A nurse, who hikes', 'A chef']
    (tmp_path/'p.txt').write_text(_csv(rows, ';'))
    assert read_table(tmp_path/'p.txt', fmt='csv', sep=';').persona.tolist() == ['A nurse, who hikes', 'A chef']
    (tmp_path/'p.csv').write_text(_csv(rows, '\t'))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['persona', 'id'\].*the file looks tab-separated: pass sep='\\t'"):
        personas_from_table(tmp_path/'p.csv', id_col='id')
    with pytest.raises(ValueError, match="pass fmt='csv', 'tsv', 'jsonl' or 'parquet'"): read_table(tmp_path/'p.txt')


def test_blank_lines_skipped_and_counted(tmp_path, caplog):
    f = tmp_path/'p.csv'; f.write_text('persona,age\nA nurse,40\n\n,\nA chef,31\n\n\n')
    with caplog.at_level(logging.WARNING, logger='paper_distill.data'):
        ps = personas_from_table(f)
    assert ps.texts == ['A nurse', 'A chef'] and ps.ids == ['000000', '000001'] and ps.meta.age.tolist() == ['40', '31']
    assert [r.getMessage() for r in caplog.records] == [f"{f}: skipped 4 blank line(s)"]
    assert read_table(f).index.tolist() == [2, 5]                                       # the rows' lines in the file
    caplog.clear()
    j = tmp_path/'p.jsonl'; j.write_text('{"persona": "A nurse"}\n\n  \n{"persona": "A chef"}\n')
    with caplog.at_level(logging.WARNING, logger='paper_distill.data'):
        assert personas_from_table(j).texts == ['A nurse', 'A chef']
    assert [r.getMessage() for r in caplog.records] == [f"{j}: skipped 2 blank line(s)"]


def test_blank_cells_refused_by_line(tmp_path, shop):
    f = tmp_path/'p.csv'; f.write_text('id,persona\np1,A nurse\n\n,A chef\n')
    with pytest.raises(ValueError, match=rf"persona table {f}: blank 'id' cell on line\(s\) \[4\]; fill it in or delete the row"):
        personas_from_table(f, id_col='id')
    d, csv = shop
    df = pd.read_csv(csv); df.loc[2, 'file'] = None; df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=rf"catalog CSV {csv}: blank 'file' cell on line\(s\) \[4\]"): Catalog.from_folder(d, csv)
    df.loc[2, 'file'] = 'deep.png'; df.loc[5, 'id'] = None; df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"blank 'id' cell on line\(s\) \[7\]"): Catalog.from_folder(d, csv)


def test_catalog_csv_in_latin1_tsv(tmp_path, shop):
    d, csv = shop
    df = pd.read_csv(csv); df['colour'] = 'rosé'
    t = tmp_path/'items.tsv'; df.to_csv(t, sep='\t', index=False, encoding='latin-1')
    with pytest.raises(ValueError, match=rf"{t}, line 2: not utf-8 text"): Catalog.from_folder(d, t)
    cat = Catalog.from_folder(d, t, encoding='latin-1')
    assert len(cat) == 10 and set(cat.meta.colour) == {'rosé'}


def test_broken_jsonl_named_by_line(tmp_path):
    j = tmp_path/'p.jsonl'
    j.write_text('{"persona": "A nurse"}\n\n{"persona": "A chef",}\n')
    with pytest.raises(ValueError, match=rf"{j}, line 3: not valid JSON \(.* at column \d+\): .*fix or delete that line"): personas_from_table(j)
    j.write_text('{"persona": "A nurse"}\n["A chef"]\n')
    with pytest.raises(ValueError, match=rf"{j}, line 2: expected a JSON object"): personas_from_table(j)
    a = tmp_path/'p.json'; a.write_text('[{"persona": "A nurse"}, {"persona": "A chef"}]')
    assert personas_from_table(a).texts == ['A nurse', 'A chef']


# ---------------------------------------------------------------- the same photo under several ids
@pytest.fixture
def twins(tmp_path):
    "20 photos, three of them saved again under other names (one twice): 24 files, 20 images."
    d = tmp_path/'twins'; d.mkdir()
    pix = np.random.default_rng(3).integers(0, 256, size=(20, 6, 4, 3), dtype=np.uint8)
    for j, a in enumerate(pix): Image.fromarray(a).save(d/f'sku{j:02d}.png')
    for src, dst in [(2, 'sku02_b'), (9, 'sku09_b'), (9, 'sku09_c'), (15, 'sku15_b')]: shutil.copy(d/f'sku{src:02d}.png', d/f'{dst}.png')
    return Catalog.from_folder(d)


def test_catalog_reports_duplicates(twins, caplog):
    assert twins.duplicates() == [['sku02', 'sku02_b'], ['sku09', 'sku09_b', 'sku09_c'], ['sku15', 'sku15_b']]
    with caplog.at_level(logging.WARNING, logger='paper_distill.data'):
        assert twins.verify() is twins
    (m,) = [r.getMessage() for r in caplog.records]
    assert "7 items in 3 group(s) have identical pixels" in m and "'sku09_c'" in m


def test_k_way_tournament_over_duplicates_completes_and_names_them(twins, tmp_path):
    hs = twins.hashes()
    refs = [ImageRef(h, partial(twins.image, j)) for j, h in enumerate(hs)]
    red = {h: float(np.asarray(twins.image(j))[..., 0].mean()) for j, h in enumerate(hs)}
    sim = SimulatedTeacher(lambda persona, hashes: np.array([red[h] for h in hashes]), tmp_path/'store', name='twins', temperature=0.3)
    personas = ['someone who likes red', 'a nurse who likes red coats', 'a chef']
    res = run_tournaments(personas, twins.ids, sim, k=5, images=dict(zip(twins.ids, refs)), seed=1, progress=False)
    for r in res:
        assert r.shared == {'sku02': ('sku02', 'sku02_b'), 'sku09': ('sku09', 'sku09_b', 'sku09_c'), 'sku15': ('sku15', 'sku15_b')}
        assert r.n_items == 24 and r.n_calls == n_calls(20, 5)
        assert all(len({hs[twins.index_of(i)] for i in g}) == len(g) for g in r.matches['items'])
        assert r.winners == r.shared.get(r.winner, (r.winner,)) and r.winner in r.winners
        el = r.elimination()
        assert len(el) == 24 and el.loc['sku09_c'].tolist() == el.loc['sku09'].tolist()
    # the store answers all of it again, with the same records (the mapping back is deterministic)
    again = run_tournaments(personas, twins.ids, ReplayTeacher.like(sim), k=5, images=dict(zip(twins.ids, refs)), seed=1, progress=False)
    for a, b in zip(res, again): pd.testing.assert_frame_equal(a.matches, b.matches); assert a.shared == b.shared
    # kept apart, the teacher refuses a group showing one image twice, and the error names the items
    with pytest.raises(TournamentError, match=r"refused round 1, items \['sku00', 'sku01', 'sku02', 'sku02_b', 'sku03'\].*"
                                              r"shows the same image twice \(images 3, 4 are "):
        tournament(twins.ids, 'a chef', sim, k=5, images=dict(zip(twins.ids, refs)), shuffle_first=False, same=False)
    with pytest.raises(TournamentError, match="all 3 items show the same image"):
        tournament(['sku09', 'sku09_b', 'sku09_c'], 'a chef', sim, k=5, images=dict(zip(twins.ids, refs)))


def test_samplers_never_show_an_image_twice(twins):
    hs = twins.hashes(); n = len(hs)
    by_image = {h: v for h, v in zip(dict.fromkeys(hs), np.random.default_rng(0).normal(size=(n, 8)))}
    emb = np.stack([by_image[h] for h in hs])                                           # copies embed alike
    pe = np.random.default_rng(1).normal(size=(30, 8))
    score = lambda idx: pe[idx] @ emb.T
    for make in (lambda **kw: PreferenceSampler(score, 30, n, **kw), lambda **kw: UniformSampler(30, n, **kw),
                 lambda **kw: UncertaintySampler(score, 30, n, top=8, **kw)):
        g = make(same=hs).sample(300, 0)
        assert all(len({hs[i] for i in row}) == len(row) for row in g.items)
        assert set(g.items.ravel()) <= {twins.index_of(k) for k in twins.ids if len(k) == 5}
        np.testing.assert_array_equal(make(same=range(n)).sample(50, 2).items, make().sample(50, 2).items)


# ---------------------------------------------------------------- personas in other languages and scripts
def test_english_filter_on_short_personas(tmp_path):
    english = ['A nurse', 'Nurse', 'A retired teacher', 'Software engineer', 'I love hiking', 'A café owner in Paris',
               'A teenage skateboarder', 'Yoga instructor, vegan', 'A young mother of twins']
    other = ['Una enfermera jubilada', 'Une infirmière de nuit', 'Ein Lehrer aus Berlin', '一位退休教师', 'Учитель на пенсии',
             'معلمة متقاعدة', 'A nurse who loves 日本の庭園と書道と茶道']
    assert all(map(is_english, english)) and not any(map(is_english, other))
    f = tmp_path/'synthetic_character.jsonl'
    f.write_text(''.join(f'{{"persona": "{t}"}}\n' for t in english + other), encoding='utf-8')
    assert read_opencharacter(f).texts == english
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        assert warn_non_latin(english + other, 'the text tower') == [12, 13, 14, 15]
    assert len(w) == 1 and '4 of 16 texts given to the text tower are partly in a non-Latin script' in str(w[0].message)
