"""Captions for RSA: structured captions from detected objects, caption files, caption selection.

RSA (Zeng et al., NeurIPS 2024) maps a caption of the scene to a metric scale and shift for a
relative-depth prediction. The official repository ships one text file per image with
:data:`CAPTION_LINES` = 15 captions (UTF-8, one caption per line):

=========  =====================================  ==========================================
lines      source                                 example
=========  =====================================  ==========================================
1–5        LLaVA-v1.6-Mistral-7B, 5 samples       "A bathroom with a white sink and a towel."
6–10       LLaVA-v1.6-Vicuna-7B, 5 samples        "A small, clean bathroom with a mirror."
11–15      structured, from panoptic segmentation "An image with two sinks, a mirror, and a towel."
=========  =====================================  ==========================================

The structured lines are 5 differently shuffled object orders of the same instance list. Training
samples one of the 15 lines uniformly; the reference evaluation always uses line 1.

:func:`structured_caption` rebuilds a structured caption from a list of class names (one per
detected instance). It differs from the reference builder in two deliberate ways: multi-word class
names are kept whole ("two traffic lights"; the reference kept only the first word, "two
traffics"), and the article comes from ``inflect`` ("an apple"; the reference always wrote "a").
The join is the reference's, including its oddity for two items ("An image with two chairs, and a
table."), because that is the text the official checkpoints were trained on.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CAPTION_KINDS",
    "CAPTION_LINES",
    "CaptionError",
    "caption_file_for",
    "is_structured",
    "plural",
    "read_caption_file",
    "select_captions",
    "structured_caption",
    "structured_captions",
    "with_article",
]

CAPTION_LINES = 15
"""Captions per file in the reference layout: 5 LLaVA-Mistral, 5 LLaVA-Vicuna, 5 structured."""

CAPTION_KINDS = ("all", "structured", "free", "none")
"""Choices for :func:`select_captions`."""

_PREFIX = "An image"

# Head nouns that are already plural in the COCO / COCO-panoptic vocabularies; inflect would
# pluralise them again ("skiss", "stairss"), so they are kept as they are when counted.
_ALREADY_PLURAL = frozenset({"skis", "stairs", "scissors"})

_STRUCTURED_RE = re.compile(r"an image(\s+with\b|\s*\.?\s*$)", re.IGNORECASE)

_engine: Any = None
_engine_lock = threading.Lock()


class CaptionError(ValueError):
    """A caption file or caption selection is unusable; the message says which file or kind."""


def _inflect_engine() -> Any:
    """The shared ``inflect.engine()``, created on first use (importing inflect takes ~1–2 s)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                import inflect

                _engine = inflect.engine()
    return _engine


def _normalise(name: str) -> str:
    """Lower-case a class name and collapse runs of whitespace to single spaces."""
    return " ".join(str(name).lower().split())


def plural(name: str) -> str:
    """Plural of a (possibly multi-word) class name through ``inflect``; only the head (last) word
    changes ("traffic light" → "traffic lights", "person" → "people")."""
    words = name.split(" ")
    if words[-1] in _ALREADY_PLURAL:
        return name
    return _inflect_engine().plural_noun(name)


def with_article(name: str) -> str:
    """ "a chair", "an apple", "an hour glass", "a unicorn" (``inflect``)."""
    return _inflect_engine().a(name)


def _phrase(name: str, count: int) -> str:
    """'a chair' / 'an apple' for one instance, 'three wine glasses' for several."""
    if count == 1:
        return with_article(name)
    return f"{_inflect_engine().number_to_words(count)} {plural(name)}"


def structured_caption(names: Sequence[str], *, rng: random.Random | None = None) -> str:
    """RSA's structured caption for a list of detected instances.

    Args:
        names: class name of each detected instance, repeats included, e.g.
            ``["chair", "table", "chair", "traffic light"]``. Names are lower-cased and
            whitespace-normalised; empty names are ignored.
        rng: when given, a copy of the (normalised) list is shuffled with ``rng.shuffle`` first,
            which changes the order in which the objects are listed.

    Returns:
        The caption. Objects are counted in order of first occurrence: one instance gives an
        article and the name ("a chair", "an apple"), several give the count in words and the
        plural ("two traffic lights", "two people"). Items are joined as in the reference:
        ``"An image with a chair."`` for one item, ``"An image with " + ", ".join(items[:-1]) +
        ", and " + items[-1] + "."`` for two or more (so two items read "An image with two
        chairs, and a table."), and ``"An image."`` when there is nothing.
    """
    cleaned = [n for n in (_normalise(name) for name in names) if n]
    if rng is not None:
        cleaned = list(cleaned)
        rng.shuffle(cleaned)
    items = [_phrase(name, count) for name, count in Counter(cleaned).items()]
    if not items:
        return f"{_PREFIX}."
    if len(items) == 1:
        return f"{_PREFIX} with {items[0]}."
    return f"{_PREFIX} with {', '.join(items[:-1])}, and {items[-1]}."


def structured_captions(names: Sequence[str], count: int = 5, *, seed: int = 0) -> list[str]:
    """``count`` structured captions of the same instances in differently shuffled orders.

    The reference stores 5 such shuffles per image (lines 11–15 of a caption file). The result is
    deterministic for a given ``seed``; with fewer distinct objects than needed, orders repeat.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    rng = random.Random(seed)
    names = list(names)
    return [structured_caption(names, rng=rng) for _ in range(count)]


def read_caption_file(path: str | os.PathLike) -> list[str]:
    """The captions in a caption file: one per non-empty line, surrounding whitespace stripped.

    Any number of captions ≥ 1 is accepted; the reference layout has :data:`CAPTION_LINES`.

    Raises:
        CaptionError: naming the file when it is missing, is not UTF-8 text, or has no caption.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CaptionError(f"caption file {path} does not exist") from None
    except IsADirectoryError:
        raise CaptionError(f"caption file {path} is a directory") from None
    except UnicodeDecodeError as err:
        raise CaptionError(
            f"caption file {path} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except OSError as err:
        raise CaptionError(f"caption file {path} cannot be read: {err}") from err
    captions = [line.strip() for line in text.splitlines()]
    captions = [c for c in captions if c]
    if not captions:
        raise CaptionError(f"caption file {path} holds no caption")
    return captions


def caption_file_for(
    image: str | os.PathLike,
    captions_dir: str | os.PathLike,
    *,
    image_root: str | os.PathLike | None = None,
) -> Path:
    """Where an image's caption file lives.

    With ``image_root``, the caption file mirrors the image's path below that root, with the
    extension replaced by ``.txt`` (the reference layout: image
    ``<root>/bathroom/rgb_00045.jpg`` → ``<captions_dir>/bathroom/rgb_00045.txt``). Without it,
    the file is ``<captions_dir>/<image stem>.txt``.

    Raises:
        CaptionError: if ``image`` is not below ``image_root``.
    """
    image = Path(image)
    captions_dir = Path(captions_dir)
    if image_root is None:
        return captions_dir / f"{image.stem}.txt"
    root = Path(image_root)
    relative = None
    for img, base in ((image, root), (image.absolute(), root.absolute()), (image.resolve(), root.resolve())):
        try:
            relative = img.relative_to(base)
            break
        except ValueError:
            continue
    if relative is None or relative == Path("."):
        raise CaptionError(f"image {image} is not under the image root {root}")
    return captions_dir / relative.with_suffix(".txt")


def is_structured(caption: str) -> bool:
    """True for structured captions ("An image with …", "An image."), any case, leading space ignored."""
    return _STRUCTURED_RE.match(caption.lstrip()) is not None


def select_captions(captions: Sequence[str], kind: str) -> list[str]:
    """The captions of one kind.

    Args:
        captions: the captions of one image, e.g. from :func:`read_caption_file`.
        kind: one of :data:`CAPTION_KINDS`: ``"all"`` keeps every caption; ``"structured"`` keeps
            the "An image with …" captions; ``"free"`` keeps the others (the LLaVA descriptions);
            ``"none"`` returns ``[""]``, the empty caption: an RSA head trained on it can only
            learn one global scale and shift (the caption-free ablation).

    Raises:
        ValueError: for an unknown ``kind``.
        CaptionError: if no caption of the requested kind exists.
    """
    if kind not in CAPTION_KINDS:
        raise ValueError(f"unknown caption kind {kind!r}; choose one of {', '.join(CAPTION_KINDS)}")
    if kind == "none":
        return [""]
    captions = list(captions)
    if kind == "all":
        selected = captions
    else:
        want_structured = kind == "structured"
        selected = [c for c in captions if is_structured(c) == want_structured]
    if not selected:
        described = "captions" if kind == "all" else f"{kind} captions"
        raise CaptionError(f"no {described} among the {len(captions)} given")
    return selected
