"Test fixtures shared by the tests: a tiny random Hugging Face transformers CLIP model and token ids for it; random images."
import numpy as np
import torch


def tiny_hf_clip(hidden_act:str='quick_gelu', # 'quick_gelu' (OpenAI CLIP) or 'gelu' (LAION, FashionCLIP 2.0)
                 seed:int=0, # weights seed
                 eos_token_id:int=98, # the text eos id (98 = the largest id of the 99-token vocabulary)
                ):
    "A small random transformers CLIPModel for offline conversion tests (no layer norm is an identity)."
    from transformers import CLIPConfig, CLIPModel
    cfg = CLIPConfig(text_config=dict(vocab_size=99, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=16, eos_token_id=eos_token_id,
                                      bos_token_id=97, pad_token_id=0, hidden_act=hidden_act),
                     vision_config=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                                        image_size=32, patch_size=8, hidden_act=hidden_act), projection_dim=24)
    torch.manual_seed(seed)
    m = CLIPModel(cfg).eval()
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.1*torch.randn_like(p))
    return m


def tiny_text_ids(n:int, vocab:int=99, ctx:int=16, eos:int=98, seed:int=0)->torch.Tensor:
    "Token ids [n, ctx] for tiny_hf_clip: bos, random tokens, eos at a random position, zero padding."
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, ctx, dtype=torch.long)
    for i in range(n):
        L = int(torch.randint(3, ctx + 1, (1,), generator=g))
        ids[i, 0] = 97; ids[i, 1:L-1] = torch.randint(1, 97, (L-2,), generator=g); ids[i, L-1] = eos
    return ids


def random_images(n:int, seed:int=0, px:int=32)->list:
    "`n` random px×px RGB uint8 images (distinct content, so distinct hashes)."
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (px, px, 3), dtype=np.uint8) for _ in range(n)]
