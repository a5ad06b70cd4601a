"Integration, fault and bad-input tests of paper_distill.clip, .convert, .student and .mini_students (offline)."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from paper_distill.core import hash_text
from paper_distill.clip import (CONFIG_NAME, WEIGHTS_NAME, MINI_TEXT_MODEL, MINI_PREPROCESS, load_clip, mini_model_cfg,
                                mini_student_dir, new_clip, read_local_dir_config, resolve_text_source)
from paper_distill.convert import convert_hf_clip
from paper_distill.student import Student, StudentConfig
from paper_distill.mini_students import MINI_STUDENTS, PretrainConfig, pretrain_data_sha256, weights_sha256
from helpers import tiny_hf_clip, tiny_text_ids

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def hf_folder(tmp_path_factory):
    "A small random transformers CLIPModel saved with save_pretrained, with a CLIP image processor."
    from transformers import CLIPImageProcessor
    d = tmp_path_factory.mktemp('hf')
    m = tiny_hf_clip('gelu', seed=3)
    m.save_pretrained(d)
    CLIPImageProcessor(size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32},
                       image_mean=[0.2, 0.3, 0.4], image_std=[0.6, 0.5, 0.4]).save_pretrained(d)
    return d, m


def test_convert_saved_hf_folder_parity_and_preprocessing(hf_folder, tmp_path):
    "A saved HF CLIP folder converts to a local-dir: folder with the same embeddings and the processor's preprocessing."
    from transformers import CLIPImageProcessor
    src, hf = hf_folder
    out = convert_hf_clip(src, tmp_path/'oc')
    model, preprocess, _ = load_clip(f'local-dir:{out}')
    x, ids = torch.randn(3, 3, 32, 32), tiny_text_ids(3, seed=5)
    with torch.no_grad():
        hi, ht = hf.get_image_features(pixel_values=x), hf.get_text_features(input_ids=ids)
        hi, ht = [getattr(o, 'pooler_output', o) for o in (hi, ht)]
        torch.testing.assert_close(model.encode_image(x), hi, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model.encode_text(ids), ht, atol=1e-5, rtol=1e-4)
    # preprocessing: an image of the model's size gives the processor's pixel values
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    ref = CLIPImageProcessor.from_pretrained(src)(images=img, return_tensors='pt').pixel_values[0]
    torch.testing.assert_close(preprocess(img), ref, atol=1e-5, rtol=1e-5)


def test_hub_names_fail_offline_with_advice(monkeypatch):
    "hf-hub: names and pretrained tags fail offline with a message naming the offline route."
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, 'HF_HUB_OFFLINE', True)
    for call in (lambda: load_clip('hf-hub:patrickjohncyh/fashion-clip'),
                 lambda: load_clip('ViT-B-32', pretrained='laion2b_s34b_b79k')):
        with pytest.raises(RuntimeError) as e: call()
        assert 'local-dir:' in str(e.value) and 'convert_hf_clip' in str(e.value)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown model 'nope'"): load_clip('nope')
    with pytest.raises(FileNotFoundError, match='not found'): load_clip(f'local-dir:{tmp_path}/missing')
    (tmp_path/'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME): load_clip(f'local-dir:{tmp_path}/empty')
    with pytest.raises(FileNotFoundError, match="no shipped mini student 'nosuch'.*retrain"): load_clip('mini:nosuch')
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'): load_clip(str(tmp_path/'x.pt'), config='ViT-B-32')
    with pytest.raises(ModuleNotFoundError, match='pip install'): resolve_text_source('python-package:not_installed_pkg/m')
    with pytest.raises(ValueError, match="train must be"): Student(StudentConfig(train='some'), *new_clip(mini_model_cfg(), MINI_PREPROCESS))


def test_clip_student_image_only_checkpoint_roundtrip(hf_folder, tmp_path):
    "A CLIP (non-HF text) student saved image-tower-only rebuilds its text tower from text_from."
    src, _ = hf_folder
    base = convert_hf_clip(src, tmp_path/'base')
    st = Student(StudentConfig(model=f'local-dir:{base}', train='last:1'))
    with torch.no_grad():
        for p in st.trainable_parameters(): p.add_(0.01)
    st.save(tmp_path/'student', weights='visual')
    cfg = json.loads((tmp_path/'student'/CONFIG_NAME).read_text())
    assert cfg['paper_distill']['text_from'] == f'local-dir:{base}'
    back = Student.load(tmp_path/'student')
    for (k, a), (k2, b) in zip(st.model.state_dict().items(), back.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    with pytest.raises(ValueError, match='cannot save image-tower-only'):
        Student(StudentConfig(model=f'local-dir:{base}')).save(base, weights='visual')


def test_text_cache_by_hash():
    st = Student(StudentConfig(), *new_clip(mini_model_cfg(), MINI_PREPROCESS))
    e1 = st.embed_texts(['a red dress', 'a blue coat'])
    assert set(st._text_cache) == {hash_text('a red dress'), hash_text('a blue coat')}
    st.model.text.transformer.embeddings.word_embeddings.weight.data.mul_(0)   # a cached text is never recomputed
    assert torch.equal(st.embed_texts(['a blue coat', 'a red dress']), e1.flip(0))
    with pytest.raises(ValueError, match=r'texts\[1\] is empty'): st.embed_texts(['ok', '  '])


@pytest.mark.parametrize('name', ['fashion', 'generic'])
def test_shipped_mini_students(name):
    "Shipped mini students: small, no machine paths, load through local-dir:, and retrieve their own captions."
    folder = mini_student_dir(name)
    assert (folder/WEIGHTS_NAME).stat().st_size < 5e6
    text = (folder/CONFIG_NAME).read_text()
    assert str(Path.home()) not in text and '/work/' not in text and 'site-packages' not in text
    cfg = json.loads(text)
    assert cfg['model_cfg']['text_cfg']['hf_model_name'] == MINI_TEXT_MODEL and cfg['paper_distill']['weights'] == 'visual'
    st = Student(StudentConfig(model=f'mini:{name}'))
    from paper_distill.world import make_world, WorldConfig
    w = make_world(WorldConfig.smoke(seed=1))
    cat = w.catalogs['hm']
    imgs, caps = np.asarray(cat.sources)[:200], cat.meta['caption' if name == 'fashion' else 'caption_generic'].tolist()[:200]
    S = st.score(caps, st.embed_images(imgs, progress=False))
    same = np.array(caps)[:, None] == np.array(caps)[None, :]
    top1 = S.argmax(1).numpy()
    acc = same[np.arange(len(caps)), top1].mean()
    chance = same.mean()
    assert acc > 5 * chance, (acc, chance)


def _short_retrain(out):
    code = ("from paper_distill.mini_students import *\nfrom paper_distill.world import make_world, WorldConfig\n"
            "w = make_world(WorldConfig.smoke())\nimport numpy as np\n"
            "d = (np.asarray(w.pretrain.sources), w.pretrain.meta.caption.tolist())\n"
            f"_, log = train_mini_student(PretrainConfig(steps=3, batch_size=64), {str(out)!r}, data=d, progress=False)\n"
            "print(log['sha256'])")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, 'HF_HUB_OFFLINE': '1'})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()[-1]


def test_retraining_is_bit_identical_across_processes(tmp_path):
    "A shortened pretraining schedule gives the same weights bit for bit in two fresh processes."
    a, b = _short_retrain(tmp_path/'a'), _short_retrain(tmp_path/'b')
    assert a == b == weights_sha256(tmp_path/'a') == weights_sha256(tmp_path/'b')
    base = Student(StudentConfig(), *new_clip(mini_model_cfg(), MINI_PREPROCESS, seed=0))
    trained = Student.load(tmp_path/'a')
    assert not torch.equal(base.model.visual.proj, trained.model.visual.proj)   # the steps did train


def test_cli_usage():
    r = subprocess.run([sys.executable, '-m', 'paper_distill.mini_students', 'train'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode != 0 and 'usage: python -m paper_distill.mini_students retrain' in r.stderr


def test_shipped_students_match_the_current_world():
    "The shipped weights were trained on exactly the world's current pretraining data (else: retrain them)."
    from paper_distill.world import make_world, WorldConfig
    worlds = {}
    for name, cfg in MINI_STUDENTS.items():
        shipped = read_local_dir_config(mini_student_dir(name))['paper_distill']
        assert PretrainConfig.from_dict(shipped['pretrain']) == cfg
        w = worlds.setdefault(cfg.world_seed, make_world(WorldConfig(seed=cfg.world_seed)))
        imgs, caps = np.asarray(w.pretrain.sources), w.pretrain.meta[cfg.caption_column].tolist()
        assert pretrain_data_sha256(imgs, caps) == shipped['data_sha256'], \
            f"{name}: the mini world's pretraining data changed; run `python -m paper_distill.mini_students retrain`"


# ---------------------------------------------------------------- images: fit, files, workers

@pytest.fixture(scope='module')
def mini():
    "A mini student (random image tower), padding (the default), and a twin on the same model that crops."
    from paper_distill.student import StudentConfig
    st = Student(StudentConfig(), *new_clip(mini_model_cfg(), MINI_PREPROCESS, seed=0))
    return st, Student(StudentConfig(fit='crop'), st.model, st.preprocess, st.tokenizer)


def _photo(w, h, seed=0):
    "A product-photo-like RGB image: light background, a dark garment, noise."
    rng = np.random.default_rng(seed)
    a = np.full((h, w, 3), 235, np.float64) - 30 * np.linspace(0, 1, h)[:, None, None]
    a[h // 8: 7 * h // 8, w // 5: 4 * w // 5] = rng.integers(20, 200, 3)
    return Image.fromarray(np.clip(a + rng.normal(0, 3, a.shape), 0, 255).astype(np.uint8))


def test_fit_pads_portraits_on_white_and_crop_cuts_them(mini, tmp_path):
    st, crop = mini
    a = np.full((128, 64, 3), 128, np.uint8); a[:16] = (200, 0, 0); a[-16:] = (0, 0, 200)   # red top, blue bottom
    f = tmp_path/'portrait.png'; Image.fromarray(a).save(f)
    back = lambda x: ((x * 0.5 + 0.5) * 255).round().int()       # MINI_PREPROCESS normalises with mean = std = 0.5
    p, c = back(st.pixels([f])[0]), back(crop.pixels([f])[0])
    assert p[:, 2, 32].tolist() == [200, 0, 0] and p[:, 61, 32].tolist() == [0, 0, 200]   # both ends kept
    assert p[:, 32, 0].tolist() == p[:, 32, 63].tolist() == [255, 255, 255]               # white bars
    assert c[:, 2, 32].tolist() == c[:, 61, 32].tolist() == [128, 128, 128]               # the crop cut them
    sq = np.asarray(_photo(100, 100))                                                     # a square: no difference
    assert torch.equal(st.pixels([sq]), crop.pixels([sq]))
    assert not torch.equal(st.embed_images([f], progress=False), crop.embed_images([f], progress=False))


def test_student_config_fields_added_later_keep_old_json(tmp_path):
    old = {'model': 'mini:fashion', 'pretrained': None, 'train': 'all', 'device': 'cpu', 'text_batch_size': 256, 'image_batch_size': 128}
    c = StudentConfig.from_dict(old)
    assert (c.fit, c.num_workers) == ('pad', 0) and c.to_dict() == old and c.hash() == StudentConfig().hash()
    new = StudentConfig(fit='crop', num_workers=3)
    assert json.loads(new.to_json())['fit'] == 'crop' and StudentConfig.load(new.save(tmp_path/'c.json')) == new
    with pytest.raises(ValueError, match=r'StudentConfig\.num_workers must be in \[0, inf\)'): StudentConfig(num_workers=-1)


def test_workers_give_the_same_embeddings_bit_for_bit(mini, tmp_path):
    "Paths, bytes, ImageRefs, PIL images and arrays, read in 2 DataLoader workers or here: the same tensors."
    from paper_distill.prompts import ImageRef
    st, _ = mini
    items = []
    for i, (w, h) in enumerate([(600, 800), (1000, 750), (300, 300), (64, 64), (500, 700)]):
        f = tmp_path/f'p{i}.jpg'; _photo(w, h, i).save(f, quality=90); items.append(f)
    items[1] = items[1].read_bytes()                                           # encoded bytes
    png = tmp_path/'c.png'; _photo(120, 90, 9).convert('RGBA').save(png)
    items += [ImageRef('0' * 64, str(png)), _photo(400, 300, 10), np.asarray(_photo(64, 64, 11)), np.asarray(_photo(80, 50, 12))]
    e0 = st.embed_images(items, batch_size=3, progress=False, num_workers=0)
    e2 = st.embed_images(items, batch_size=3, progress=False, num_workers=2)
    assert torch.equal(e0, e2) and e0.shape == (9, 384)
    head = Student(StudentConfig(train='head', num_workers=2), st.model, st.preprocess, st.tokenizer)
    assert torch.equal(head.trunk_features(items, batch_size=4, progress=False),
                       head.trunk_features(items, batch_size=4, progress=False, num_workers=0))
    with pytest.raises(ValueError, match=r'images\[4\] \(<bytes>\) cannot be read'):
        st.embed_images(items[:4] + [b'not an image'], batch_size=2, progress=False, num_workers=2)


def test_large_jpeg_files_are_decoded_at_reduced_scale_upright(mini, tmp_path):
    st, _ = mini
    im = _photo(1200, 900, 3)
    f = tmp_path/'big.jpg'; im.save(f, quality=90)
    read = st._prep().read(f)
    assert read.size == (150, 113)                                              # 1/8 scale: >= 2 x 64 px on the long side
    full = st.embed_images([im], progress=False)
    assert float((st.embed_images([f], progress=False) * full).sum()) > 0.99    # close to the full decode
    ex = Image.Exif(); ex[0x0112] = 6                                          # stored sideways, tagged "rotate 90°"
    g = tmp_path/'turned.jpg'; im.save(g, quality=90, exif=ex.tobytes())
    assert st._prep().read(g).size == (113, 150)
    up = st.embed_images([im.transpose(Image.Transpose.ROTATE_270)], progress=False)
    assert float((st.embed_images([g], progress=False) * up).sum()) > 0.99


@pytest.mark.parametrize('mode', ['shortest', 'squash', 'longest'])
def test_padding_then_one_resize_equals_the_models_preprocessing(mode):
    "On padded squares, the one-resize shortcut gives what open_clip's preprocessing gives, bit for bit (224 px, any resize mode)."
    from open_clip.transform import image_transform_v2, PreprocessCfg
    from paper_distill.data import pad_to_square
    from paper_distill.student import _Prep
    cfg = PreprocessCfg(size=224, resize_mode=mode, interpolation='bicubic')
    pp = image_transform_v2(cfg, is_train=False)
    prep = _Prep(pp, (224, 224), torch.tensor(cfg.mean), torch.tensor(cfg.std), 'pad')
    assert (prep.square is not None) == (mode == 'shortest')
    for w, h in [(600, 800), (331, 97), (224, 224), (100, 100)]:
        im = _photo(w, h, w)
        assert torch.equal(prep(im), pp(pad_to_square(im))), (mode, w, h)
