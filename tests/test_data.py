"""Loaders for every supported format (on small files made here), bad inputs, saved splits, and the mini world's
determinism across processes."""
import io, json, os, subprocess, sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from paper_distill.core import hash_image, hash_text
from paper_distill.data import Catalog, Personas, Splits, pad_to_square, paper_preprocess, personas_from_table, split_catalog, split_personas
from paper_distill.sources import is_english, read_image_parquet, read_nemotron, read_opencharacter

COLOURS = {'red': (255, 0, 0), 'green': (0, 255, 0), 'blue': (0, 0, 255)}


def _png(colour, size=(12, 8)):
    buf = io.BytesIO(); Image.new('RGB', size, colour).save(buf, 'PNG'); return buf.getvalue()


@pytest.fixture
def folder_csv(tmp_path):
    "An image folder with a CSV: id, file and attribute columns."
    (tmp_path/'img').mkdir()
    rows = []
    for k, (name, rgb) in enumerate(COLOURS.items()):
        Image.new('RGB', (12, 8), rgb).save(tmp_path/'img'/f'{name}.png')
        rows.append({'id': f'item{k}', 'file': f'{name}.png', 'colour': name, 'price': 10*k})
    pd.DataFrame(rows).to_csv(tmp_path/'items.csv', index=False)
    return tmp_path/'img', tmp_path/'items.csv'


# ---------------------------------------------------------------- catalogs
def test_folder_with_csv(folder_csv):
    folder, csv = folder_csv
    cat = Catalog.from_folder(folder, csv)
    assert cat.ids == ['item0', 'item1', 'item2']
    assert cat.meta.loc['item2', 'colour'] == 'blue' and cat.meta.loc['item1', 'price'] == 10
    assert cat.image('item1').getpixel((3, 3)) == (0, 255, 0)
    # hashes are the content hashes of the files' pixels
    assert cat.hashes() == [hash_image(folder/f'{c}.png') for c in COLOURS]
    # preprocessing: padded to square on white, then resized
    im = cat.image('item0', size=32)
    assert im.size == (32, 32) and im.getpixel((16, 1)) == (255, 255, 255) and im.getpixel((16, 16))[0] > 240


def test_folder_without_csv_nested(tmp_path):
    "UT-Zap50K layout: nested category folders, ids from relative paths, folder levels as metadata."
    for sub, n in [('Shoes/Sneakers/Nike', 2), ('Boots/Ankle/Clarks', 1)]:
        (tmp_path/sub).mkdir(parents=True)
        for k in range(n): Image.new('RGB', (20, 10), (k*50, 0, 0)).save(tmp_path/sub/f'{k}.jpg')
    (tmp_path/'notes.txt').write_text('not an image')
    cat = Catalog.from_folder(tmp_path)
    assert cat.ids == ['Boots/Ankle/Clarks/0', 'Shoes/Sneakers/Nike/0', 'Shoes/Sneakers/Nike/1']
    assert cat.meta.loc['Shoes/Sneakers/Nike/1', 'level1'] == 'Sneakers'
    assert cat.meta.loc['Boots/Ankle/Clarks/0', 'file'] == 'Boots/Ankle/Clarks/0.jpg'
    assert cat.image(0).size == (20, 10)


def test_flat_folder_farfetch(tmp_path):
    "Farfetch cut-outs: a flat folder of images (RGBA PNGs are flattened to RGB)."
    for k in range(4): Image.new('RGBA', (30, 40), (0, 0, 200, 255)).save(tmp_path/f'{1000+k}.png')
    cat = Catalog.from_folder(tmp_path, name='farfetch')
    assert cat.ids == ['1000', '1001', '1002', '1003'] and cat.name == 'farfetch'
    assert cat.image('1002').mode == 'RGB'


def _hm_parquet(path, n=4, bad=None):
    imgs = [{'bytes': _png((40*k, 10, 10)), 'path': f'{k}.jpg'} for k in range(n)]
    if bad is not None: imgs[bad] = {'bytes': b'\x89PNG truncated', 'path': f'{bad}.jpg'}
    table = pa.table({'image': imgs, 'text': [f'caption {k}' for k in range(n)]})
    pq.write_table(table, path)
    return path


def test_hm_parquet(tmp_path):
    "The HF `tomytjandra/h-and-m-fashion-caption` layout: image struct {bytes, path} + text."
    p = _hm_parquet(tmp_path/'train-00000-of-00001.parquet')
    schema = pq.read_schema(p)
    assert pa.types.is_struct(schema.field('image').type)
    cat = read_image_parquet(p, name='hm')
    assert len(cat) == 4 and cat.ids[0] == '000000'
    assert cat.meta.text.tolist() == [f'caption {k}' for k in range(4)]
    assert cat.image(2).getpixel((0, 0)) == (80, 10, 10)
    assert cat.hashes()[3] == hash_image(_png((120, 10, 10)))


def test_hm_parquet_corrupt_image(tmp_path):
    p = _hm_parquet(tmp_path/'hm.parquet', bad=1)
    cat = read_image_parquet(p)
    with pytest.raises(ValueError, match=r"item '000001' is unreadable or corrupt.*skip_bad=True"): cat.image(1)
    good = read_image_parquet(p, skip_bad=True)
    assert good.ids == ['000000', '000002', '000003']
    assert [k for k, _ in good.skipped] == ['000001']


def test_parquet_missing_column(tmp_path):
    p = _hm_parquet(tmp_path/'hm.parquet')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['caption'\]"): read_image_parquet(p, text_col='caption')
    with pytest.raises(ValueError, match=r"missing column\(s\) \['picture'\]"): read_image_parquet(p, image_col='picture')


# ------------------------------------------------------- bad catalog inputs
def test_missing_image_file(folder_csv):
    folder, csv = folder_csv
    (folder/'green.png').unlink()
    cat = Catalog.from_folder(folder, csv)            # lazy: nothing opened yet
    with pytest.raises(FileNotFoundError, match=r"image of item 'item1' not found: .*green\.png; fix the path"):
        cat.image('item1')
    with pytest.raises(FileNotFoundError, match="item1"): cat.verify()
    good = Catalog.from_folder(folder, csv, skip_bad=True)
    assert good.ids == ['item0', 'item2'] and good.skipped[0][0] == 'item1' and 'not found' in good.skipped[0][1]


def test_corrupt_image_file(folder_csv):
    folder, csv = folder_csv
    (folder/'blue.png').write_bytes(b'garbage, not a png')
    cat = Catalog.from_folder(folder, csv)
    with pytest.raises(ValueError, match=r"image of item 'item2' is unreadable or corrupt"): cat.image(2)
    good = cat.verify(skip_bad=True)
    assert good.ids == ['item0', 'item1'] and [k for k, _ in good.skipped] == ['item2']


def test_duplicate_ids(folder_csv):
    folder, csv = folder_csv
    df = pd.read_csv(csv); df.loc[2, 'id'] = 'item0'; df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"duplicate id\(s\) in the catalog 'img': \['item0'\].*make ids unique"):
        Catalog.from_folder(folder, csv)


def test_empty_catalog(tmp_path):
    (tmp_path/'empty').mkdir()
    with pytest.raises(ValueError, match="'empty' is empty: no image files"): Catalog.from_folder(tmp_path/'empty')
    pd.DataFrame({'id': [], 'file': []}).to_csv(tmp_path/'none.csv', index=False)
    with pytest.raises(ValueError, match="is empty"): Catalog.from_folder(tmp_path/'empty', tmp_path/'none.csv')
    with pytest.raises(FileNotFoundError, match="image folder not found"): Catalog.from_folder(tmp_path/'nope')


def test_all_images_bad(folder_csv):
    folder, csv = folder_csv
    for c in COLOURS: (folder/f'{c}.png').unlink()
    with pytest.raises(ValueError, match="every image is unreadable"): Catalog.from_folder(folder, csv, skip_bad=True)


def test_catalog_missing_columns(folder_csv):
    folder, csv = folder_csv
    with pytest.raises(ValueError, match=r"missing column\(s\) \['sku'\].*pass its name"): Catalog.from_folder(folder, csv, id_col='sku')
    df = pd.read_csv(csv).drop(columns='file'); df.to_csv(csv, index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['file'\]"): Catalog.from_folder(folder, csv)


# ---------------------------------------------------------------- personas
TEXTS = ['A nurse who loves hiking in the hills', 'A retired teacher who enjoys chess', 'A chef from Lyon with a passion for bread']


@pytest.mark.parametrize('fmt', ['csv', 'jsonl', 'parquet'])
def test_personas_from_each_format(tmp_path, fmt):
    df = pd.DataFrame({'pid': ['a', 'b', 'c'], 'description': TEXTS, 'age': [30, 70, 45]})
    p = tmp_path/f'personas.{fmt}'
    {'csv': lambda: df.to_csv(p, index=False), 'jsonl': lambda: df.to_json(p, orient='records', lines=True),
     'parquet': lambda: df.to_parquet(p)}[fmt]()
    ps = personas_from_table(p, text_col='description', id_col='pid')
    assert ps.ids == ['a', 'b', 'c'] and ps.texts == TEXTS and ps.text('b') == TEXTS[1]
    assert str(ps.meta.loc['c', 'age']) == '45'
    assert ps.hashes() == [hash_text(t) for t in TEXTS]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['persona'\].*text_col="): personas_from_table(p)


def test_read_nemotron(tmp_path):
    p = tmp_path/'train-00000-of-00001.parquet'
    pd.DataFrame({'uuid': ['u1', 'u2'], 'persona': TEXTS[:2], 'occupation': ['nurse', 'teacher']}).to_parquet(p)
    ps = read_nemotron(p)
    assert ps.texts == TEXTS[:2] and ps.name == 'nemotron' and ps.meta.occupation.tolist() == ['nurse', 'teacher']
    assert read_nemotron(p, id_col='uuid').ids == ['u1', 'u2']


def test_read_opencharacter_english_filter(tmp_path):
    rows = [{'persona': 'A specialist who provides strategies and resources to help children with anxiety in the classroom'},
            {'persona': 'Un especialista que ayuda a los niños con ansiedad en la escuela'},
            {'persona': 'Une infirmière de nuit qui adore le jardinage et les livres'},
            {'persona': '一位热爱园艺的退休教师'},
            {'persona': 'An astronomer who is fascinated by the rings of Saturn'}]
    p = tmp_path/'synthetic_character.jsonl'
    p.write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in rows), encoding='utf-8')
    ps = read_opencharacter(p)
    assert ps.ids == ['000000', '000004']          # ids keep the file's row numbers
    assert len(read_opencharacter(p, english_only=False)) == 5
    assert not is_english('Der Lehrer wohnt in Berlin und fährt gerne mit dem Fahrrad')
    with pytest.raises(ValueError, match="unknown method"): is_english('x', method='cld3')


def test_bad_personas(tmp_path):
    p = tmp_path/'p.jsonl'
    p.write_text('{"persona": "A nurse"}\n{"persona": ""}\n')
    with pytest.raises(ValueError, match="persona '000001' in 'p' is empty; fill in its text or drop that row"): personas_from_table(p)
    p.write_text('{"persona": "A nurse"}\n{"persona": 42}\n')
    with pytest.raises(TypeError, match=r"persona '000001' in 'p' is not text \(int: 42\)"): personas_from_table(p)
    p.write_text('{"persona": "A nurse"}\n{"persona": null}\n')
    with pytest.raises(TypeError, match="persona '000001' in 'p' is not text"): personas_from_table(p)
    c = tmp_path/'p.csv'
    pd.DataFrame({'persona': ['A nurse', '   ', 'A chef']}).to_csv(c, index=False)
    with pytest.raises(ValueError, match="persona '000001' in 'p' is empty"): personas_from_table(c)
    pd.DataFrame({'id': ['x', 'x'], 'persona': ['A nurse', 'A chef']}).to_csv(c, index=False)
    with pytest.raises(ValueError, match=r"duplicate id\(s\) in the persona set 'p': \['x'\]"): personas_from_table(c, id_col='id')
    c.write_text('persona\n')
    with pytest.raises(ValueError, match="is empty"): personas_from_table(c)
    with pytest.raises(FileNotFoundError, match="table not found"): personas_from_table(tmp_path/'missing.csv')


# ------------------------------------------------------------------ splits
def test_splits_saved_and_reloaded(tmp_path, folder_csv):
    ids = [f'p{k}' for k in range(50)]
    s = Splits.load_or_make(tmp_path/'s.json', ids, {'test': 10, 'val': 10, 'train': None}, seed=1)
    assert s.sizes() == {'test': 10, 'val': 10, 'train': 30}
    assert sorted(sum(s.parts.values(), [])) == sorted(ids)
    assert json.loads((tmp_path/'s.json').read_text())['parts']['test'] == s['test']
    # a later run with other sizes or seed gets the saved split, unchanged
    assert Splits.load_or_make(tmp_path/'s.json', ids, {'test': 25, 'train': None}, seed=7) == s
    with pytest.raises(ValueError, match="different set of ids; delete it"):
        Splits.load_or_make(tmp_path/'s.json', ids + ['p_new'], {'test': 10})
    # paper-like Nemotron split: test/val/train with the rest unused
    t = Splits.make(ids, {'test': 10, 'val': 10, 'train': 20}, seed=0)
    assert sum(t.sizes().values()) == 40
    ps = split_personas(Personas([f'text {i}' for i in ids], ids), t)
    assert ps['val'].ids == t['val']
    folder, csv = folder_csv
    cs = split_catalog(Catalog.from_folder(folder, csv), Splits.make(['item0', 'item1', 'item2'], {'test': 1, 'train': None}))
    assert len(cs['test']) == 1 and len(cs['train']) == 2


def test_preprocess_white_padding():
    im = Image.new('RGB', (100, 20), (0, 0, 0))
    sq = pad_to_square(im)
    assert sq.size == (100, 100) and sq.getpixel((50, 5)) == (255, 255, 255) and sq.getpixel((50, 50)) == (0, 0, 0)
    out = paper_preprocess(im)
    assert out.size == (224, 224) and out.getpixel((112, 10)) == (255, 255, 255) and out.getpixel((112, 112)) == (0, 0, 0)


# --------------------------------------------------------- the mini world
_WORLD_HASH = ("import json, sys; from paper_distill.world import make_world, WorldConfig;"
               "cfg = WorldConfig.from_json(sys.argv[1]); w = make_world(cfg); print(w.hash())")


def _world_hashes(cfg_json, n=2):
    env = {**os.environ, 'PYTHONHASHSEED': 'random'}
    procs = [subprocess.Popen([sys.executable, '-c', _WORLD_HASH, cfg_json], stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    return outs


# The default world's hash: the shipped mini students and teacher store snapshots were made from this world. It changes
# only when the vocabulary (paper_distill/data/world/*.json) or the generator changes, and then they must be rebuilt.
DEFAULT_WORLD_HASH = '3f0490f735c3a377633e41ec0984f83fce4768f0bfd7b8f7b89a382f6d5117fe'


def test_default_world_identical_in_two_processes():
    "Images, persona texts, captions and splits of the default world hash the same in two fresh processes, as pinned."
    from paper_distill.world import WorldConfig
    a, b = _world_hashes(WorldConfig().to_json())
    assert a == b == DEFAULT_WORLD_HASH


def test_world_vocabulary_is_package_data():
    "The vocabulary is read from JSON package data into the same Python types the generator relies on."
    from paper_distill.core import package_data_dir
    import paper_distill.world as W
    files = sorted(p.name for p in (package_data_dir()/'world').glob('*.json'))
    assert files == ['personas.json', 'shapes.json', 'vocabulary.json']
    voc = json.loads((package_data_dir()/'world'/'vocabulary.json').read_text(encoding='utf-8'))
    assert W.STYLE_DIMS == tuple(voc['style_dims']) and W.CATALOGS['hm'] == list(voc['catalogs']['hm']['categories'])
    assert W.COLOURS['navy'] == ((30, 40, 92), (0.4, 0.0, 0.0, -0.2)) and W.PATTERNS['plain'] == (0.1, 0.0, 0.0, -0.3)
    assert W.CATEGORIES['jeans'][1:] == ('trousers', (-0.3, 0.1, 0.2, -0.1)) and W.PLURAL == {'tailored trousers', 'jeans', 'shorts', 'leggings'}
    assert W.ARCHETYPES['athlete']['w'] == (-0.6, 1.4, 0.0, 0.2) and W.ARCHETYPE_NAMES[0] == 'professional'
    assert W.FIRST_NAMES[0] == ('Carmen', 'she') and W.FIRST_NAMES[-1] == ('Jordan', 'they') and W.N_TRAIN_PHRASES == 8


def test_world_config_checked():
    from paper_distill.world import WorldConfig
    with pytest.raises(TypeError, match=r"WorldConfig\.n_items: expected int, got '240' \(str\)"): WorldConfig.from_json('{"n_items": "240"}')
    with pytest.raises(ValueError, match=r"WorldConfig\.p_literal_item must be in \[0, 1\], got -0\.1"): WorldConfig(p_literal_item=-0.1)
    with pytest.raises(ValueError, match="unknown catalog or persona set"): WorldConfig(persona_sets=('reddit',))


def test_world_seed_changes_world_and_utility_matches():
    from paper_distill.world import WorldConfig, make_world
    w0, w1 = make_world(WorldConfig.smoke()), make_world(WorldConfig.smoke(seed=1))
    assert w0.hash() != w1.hash()
    # the teacher's interface: persona text + image hashes
    pid = w0.persona_splits['opencharacter']['test'][3]; text = w0.personas['opencharacter'].text(pid)
    cat = w0.catalogs['zap50k']; ids = cat.ids[:40]
    u = w0.utility(text, [cat.hashes()[cat.index_of(i)] for i in ids])
    np.testing.assert_allclose(u, w0.utility_matrix('opencharacter', [pid], 'zap50k', ids)[0])
    with pytest.raises(KeyError, match="not an image of this world"): w0.utility(text, [hash_image(_png((1, 2, 3)))])
    # literal captions never contain a persona's occupation or hobby phrase
    caps = ' | '.join(c for k, c in [*w0.catalogs.items(), ('pretrain', w0.pretrain)] for c in c.meta.caption)
    for p in w0.personas.values():
        for occ, hob in zip(p.meta.occupation, p.meta.hobbies):
            for ph in [occ, *hob.split('; ')]: assert ph not in caps, ph


def test_world_without_names_and_ages():
    "names_and_ages=False (the name-and-age nuisance removed): Nemotron-style texts carry no name or age."
    from paper_distill.world import WorldConfig, make_world, FIRST_NAMES
    w = make_world(WorldConfig.smoke(catalogs=('hm',), persona_sets=('nemotron',), names_and_ages=False))
    texts = w.personas['nemotron'].texts
    assert all(t.startswith('This person is a') for t in texts)
    assert not any(ch.isdigit() for t in texts for ch in t)
    assert not any(f'{n} ' in t for t in texts for n, _ in FIRST_NAMES)
