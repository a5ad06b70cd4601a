"""How GeminiTeacher sends images (the real google-genai client against the local generateContent stand-in): a shop's
small JPEG/WebP file in its own bytes, larger or odd ones decoded and re-encoded (PNG when small and not downscaled,
else JPEG at quality 90), the store key a hash of the pixels whatever the input, and 'png' kept for older stores."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from paper_distill.core import hash_image
from paper_distill.fake_gemini import FakeGemini, b64bytes
from paper_distill.gemini import GeminiTeacher, gemini_spec
from paper_distill.prompts import ImageRef, rank_request, shown_order
from paper_distill.teacher import ReplayTeacher, StoreMiss

KEY, MODEL, PERSONA = 'local-test-key-images', 'gemini-test', 'a potter who hikes in the rain'


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv('GEMINI_API_KEY', KEY)
    monkeypatch.delenv('GOOGLE_API_KEY', raising=False)
    with FakeGemini(expected_key=KEY) as s: yield s


def photo(w, h, seed=0, mode='RGB'):
    "A product-photo-like image: light background, a shaded garment, sensor noise."
    rng = np.random.default_rng(seed)
    im = Image.fromarray((235 - 30 * np.linspace(0, 1, h)[:, None, None] + np.zeros((h, w, 3))).astype(np.uint8))
    ImageDraw.Draw(im).rounded_rectangle((w // 5, h // 8, 4 * w // 5, 7 * h // 8), radius=w // 10,
                                         fill=tuple(int(v) for v in rng.integers(20, 200, 3)))
    im = Image.fromarray(np.clip(np.asarray(im) + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8))
    return im.convert(mode)


def save(im, path, fmt, **kw):
    im.save(path, format=fmt, **kw); return Path(path)


def sent(server, req):
    "(mime type, bytes) of each image of the one logged request, in the caller's order."
    parts = server.answered()[-1]['body']['contents'][0]['parts']
    inline = [p.get('inlineData') or p.get('inline_data') for p in parts if 'inlineData' in p or 'inline_data' in p]
    out = [None] * len(inline)
    for d, i in zip(inline, shown_order(req, 0)):
        out[i] = (d.get('mimeType') or d.get('mime_type'), b64bytes(d['data']))
    return out


def test_images_go_in_their_own_encoding_when_small_else_re_encoded(server, tmp_path):
    small = save(photo(288, 384, 1), tmp_path/'small.jpg', 'JPEG', quality=90)
    webp = save(photo(200, 200, 2), tmp_path/'small.webp', 'WEBP', quality=80)
    large = save(photo(1000, 800, 3), tmp_path/'large.jpg', 'JPEG', quality=90)
    cut = photo(64, 64, 4, 'RGBA'); cut.putpixel((0, 0), (0, 0, 0, 0))
    cutout = save(cut, tmp_path/'cutout.png', 'PNG')                                     # transparent: not as it is
    ex = Image.Exif(); ex[0x0112] = 6
    turned = save(photo(90, 60, 5), tmp_path/'turned.jpg', 'JPEG', quality=90, exif=ex.tobytes())   # "rotate 90°"
    arr = np.asarray(photo(32, 32, 6))                                                  # pixels in memory
    ref = ImageRef(hash_image(small), str(small))
    images = [small, webp, large, cutout, turned, arr]
    req = rank_request(PERSONA, images)
    t = GeminiTeacher(tmp_path/'s', model=MODEL, base_url=server.url, concurrency=1)
    assert sorted(t.rank(PERSONA, images)) == list(range(6))
    got = sent(server, req)
    assert got[0] == ('image/jpeg', small.read_bytes())                                 # the shop's own bytes
    assert got[1] == ('image/webp', webp.read_bytes())
    mime, data = got[2]
    assert mime == 'image/jpeg' and data != large.read_bytes()
    with Image.open(io.BytesIO(data)) as im: assert (im.format, im.size) == ('JPEG', (384, 307))   # downscaled, re-encoded
    mime, data = got[3]
    with Image.open(io.BytesIO(data)) as im:
        assert mime == 'image/png' and im.mode == 'RGB' and im.getpixel((0, 0)) == (255, 255, 255)   # on white
    mime, data = got[4]
    with Image.open(io.BytesIO(data)) as im: assert mime == 'image/png' and im.size == (60, 90)     # upright
    mime, data = got[5]
    assert mime == 'image/png' and hash_image(data) == hash_image(arr)                   # exactly the pixels
    # the store key is a hash of the pixels: the file, its decoded pixels and an ImageRef to it ask the same question
    pixels = np.asarray(Image.open(small).convert('RGB'))
    keys = {t.store_request(rank_request(PERSONA, [s, *images[1:]]))[0].key for s in (small, pixels, ref)}
    assert len(keys) == 1 and len(t.store) == 1
    rec = t.store.get(t.store_request(req)[0])
    assert rec['request']['image_hashes'][shown_order(req, 0).index(0)] == hash_image(small)


def test_a_jpeg_file_and_the_same_photo_in_memory(server, tmp_path):
    "A JPEG file goes as its own bytes; the same photo decoded in memory goes as lossless PNG (small) — the same key."
    f = save(photo(288, 384, 7), tmp_path/'p.jpg', 'JPEG', quality=90)
    other = [np.asarray(photo(40, 40, 8)), np.asarray(photo(40, 40, 11))]
    pixels = np.asarray(Image.open(f).convert('RGB'))
    t = GeminiTeacher(tmp_path/'s', model=MODEL, base_url=server.url, concurrency=1)
    t.rank(PERSONA, [f, *other])
    (m1, b1), *_ = sent(server, rank_request(PERSONA, [f, *other]))
    t2 = GeminiTeacher(tmp_path/'s2', model=MODEL, base_url=server.url, concurrency=1)
    t2.rank(PERSONA, [pixels, *other])
    (m2, b2), *_ = sent(server, rank_request(PERSONA, [pixels, *other]))
    assert (m1, b1) == ('image/jpeg', f.read_bytes())
    assert m2 == 'image/png' and hash_image(b2) == hash_image(pixels) == hash_image(f)
    assert len(b2) > 3 * len(b1)                                                          # why files go as they are
    assert t.store_request(rank_request(PERSONA, [f, *other]))[0].key == t2.store_request(rank_request(PERSONA, [pixels, *other]))[0].key


def test_png_format_is_the_older_identity(server, tmp_path):
    "image_format='png' sends every image as PNG, as before 'auto'; the format is part of the teacher's identity."
    f = save(photo(288, 384, 9), tmp_path/'p.jpg', 'JPEG', quality=90)
    imgs = [f, np.asarray(photo(40, 40, 10)), np.asarray(photo(40, 40, 12))]
    t = GeminiTeacher(tmp_path/'s', model=MODEL, base_url=server.url, concurrency=1, image_format='png')
    got = t.rank(PERSONA, imgs)
    assert [m for m, _ in sent(server, rank_request(PERSONA, imgs))] == ['image/png'] * 3
    assert t.gen_config == dict(temperature=0.0, seed=0, max_output_tokens=None, thinking_budget=None, max_image_px=384, image_format='png')
    assert ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL, image_format='png')).rank(PERSONA, imgs) == got
    with pytest.raises(StoreMiss): ReplayTeacher(tmp_path/'s', **gemini_spec(MODEL)).rank(PERSONA, imgs)
    with pytest.raises(ValueError, match="image_format must be one of"): gemini_spec(MODEL, image_format='gif')
