"""Captions for synthetic scenes: RSA-style structured captions and templated free text.

RSA conditions its depth-scale prediction on a caption of the image, and training samples one caption per
step. Two kinds are produced from the list of rendered instances (their class names):

* **structured** captions in the RSA detection style, ``"An image with two chairs, a table, and a lamp."``:
  every visible class with its exact count. Count 1 uses the article, 2..20 are spelled out, larger counts
  are digits. Articles and plurals come from ``inflect`` through :mod:`metricdepth.rsa.captions` (the same
  rules as RSA's detector captions: "an hour glass", "a unicorn", "two people"); only the head (last word)
  of a multi-word name is pluralised ("traffic lights").
  Items are joined as "X", "X and Y", "X, Y, and Z" (Oxford comma), sorted by name unless ``order`` is given;
  no objects gives "An image with no recognisable objects.". :func:`count_words` parses one back.
* **free** captions from a few templates, ``"A small room with a sofa next to a lamp."``. Each free template
  is tied to one scene family ("tabletop", "room", "street"), names one or two visible classes (never an
  invisible one, never a wrong count) and each family has its own wording for an empty scene.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "captions_for",
    "count_words",
    "free_caption",
    "number_word",
    "pluralize",
    "structured_caption",
    "structured_captions",
    "with_count",
]

_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
)  # fmt: skip
_EMPTY_STRUCTURED = "An image with no recognisable objects."
_PREFIX = "an image with "

# Templates: (text, number of class slots). "{0}"/"{1}" receive `with_count` phrases.
_TEMPLATES: dict[str, list[tuple[str, int]]] = {
    "tabletop": [
        ("A desk with {0} on it.", 1),
        ("A desk with {0} and {1} on it.", 2),
        ("A close-up of {0} next to {1}.", 2),
        ("A cluttered desk with {0}.", 1),
        ("Some objects on a desk: {0} and {1}.", 2),
    ],
    "room": [
        ("A small room with {0} next to {1}.", 2),
        ("A cosy room with {0}.", 1),
        ("An interior with {0} and {1}.", 2),
        ("A furnished room containing {0}.", 1),
        ("The corner of a room with {0} beside {1}.", 2),
    ],
    "street": [
        ("A city street with {0} and {1}.", 2),
        ("An urban scene with {0}.", 1),
        ("A road in town with {0} near {1}.", 2),
        ("A city block with {0}.", 1),
        ("A wide road with {0}.", 1),
    ],
}
# Tabletop scenes whose single table is visible may name it as the surface (it counts as one named class).
_TABLE_TEMPLATES = [("A wooden table seen from above with {0}.", 1), ("A table with {0} on it.", 1)]
_TABLE_ONLY = ["A wooden table seen from above with nothing on it.", "An empty table seen from above."]
_EMPTY = {
    "tabletop": ["A bare desk with nothing on it.", "An empty desk seen from above."],
    "room": ["An empty room.", "A bare room with no furniture."],
    "street": ["An empty street.", "A deserted road."],
}


def number_word(n: int) -> str:
    """``n`` as an English word for 0..20 ("one", "two", ... "twenty"), as digits above."""
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"count must be non-negative, got {n}")
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def pluralize(name: str) -> str:
    """Plural of a class name; only the last word of a multi-word name changes ("toy car" -> "toy cars").
    The same rules as RSA's structured captions (:func:`metricdepth.rsa.captions.plural`, ``inflect``)."""
    from ...rsa.captions import plural

    return plural(name)


def with_count(name: str, n: int) -> str:
    """``name`` with its count: "a cup", "an apple", "two cups", "21 cars"."""
    n = operator.index(n)
    if n < 1:
        raise ValueError(f"count of {name!r} must be >= 1, got {n}")
    if n == 1:
        from ...rsa.captions import with_article

        return with_article(name)
    return f"{number_word(n)} {pluralize(name)}"


def _join(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def _check(counts: Mapping[str, int]) -> None:
    for name, n in counts.items():
        if operator.index(n) < 1:
            raise ValueError(f"count of {name!r} must be >= 1, got {n}")


def structured_caption(counts: Mapping[str, int], order: Sequence[str] | None = None) -> str:
    """Caption listing every class with its count, in ``order`` (a permutation of the keys; default: sorted).

    ``{"chair": 2, "table": 1, "lamp": 1}`` with order chair, table, lamp gives
    "An image with two chairs, a table, and a lamp."
    """
    _check(counts)
    if order is None:
        order = sorted(counts)
    elif len(order) != len(counts) or set(order) != set(counts):
        raise ValueError(f"order {list(order)} is not a permutation of {sorted(counts)}")
    if not counts:
        return _EMPTY_STRUCTURED
    return "An image with " + _join([with_count(name, counts[name]) for name in order]) + "."


def structured_captions(counts: Mapping[str, int], rng: np.random.Generator, n: int = 3) -> list[str]:
    """``n`` structured captions with distinct random item orders (all of them when there are fewer)."""
    _check(counts)
    names = sorted(counts)
    if len(names) <= 6:  # at most 720 orders: enumerate and draw without replacement
        perms = list(itertools.permutations(names))
        orders = [perms[i] for i in rng.permutation(len(perms))[: max(n, 0)]]
    else:  # at least 5040 orders: rejection-sample distinct ones
        seen: dict[tuple[str, ...], None] = {}
        while len(seen) < n:
            seen[tuple(names[i] for i in rng.permutation(len(names)))] = None
        orders = list(seen)
    return [structured_caption(counts, order) for order in orders]


def free_caption(counts: Mapping[str, int], family: str, rng: np.random.Generator) -> str:
    """A templated sentence for ``family`` naming one or two visible classes with correct counts."""
    if family not in _TEMPLATES:
        raise ValueError(f"unknown scene family {family!r}; expected one of {sorted(_TEMPLATES)}")
    _check(counts)
    names = sorted(counts)
    surface = family == "tabletop" and counts.get("table") == 1
    if surface:
        names.remove("table")
        if not names:
            return _TABLE_ONLY[int(rng.integers(len(_TABLE_ONLY)))]
    if not names:
        return _EMPTY[family][int(rng.integers(len(_EMPTY[family])))]
    pool = _TEMPLATES[family] + (_TABLE_TEMPLATES if surface else [])
    pool = [(text, k) for text, k in pool if k <= len(names)]
    text, k = pool[int(rng.integers(len(pool)))]
    chosen = [names[i] for i in rng.choice(len(names), size=k, replace=False)]
    return text.format(*(with_count(name, counts[name]) for name in chosen))


def captions_for(
    instance_class: Sequence[str], family: str, rng: np.random.Generator, n_structured: int = 3
) -> list[str]:
    """Structured captions of the instances' class counts, followed by one free caption."""
    counts = dict(Counter(instance_class))
    return [*structured_captions(counts, rng, n_structured), free_caption(counts, family, rng)]


def count_words(caption: str, vocabulary: Sequence[str]) -> dict[str, int]:
    """Parse a structured caption back to ``{class: count}`` (names from ``vocabulary``, longest first)."""
    forms: dict[tuple[str, ...], str] = {}
    for name in vocabulary:
        forms[tuple(name.lower().split())] = name
        forms[tuple(pluralize(name).lower().split())] = name
    longest = max((len(f) for f in forms), default=0)
    numbers = {"a": 1, "an": 1} | {w: i for i, w in enumerate(_NUMBERS) if i}
    text = caption.strip().lower()
    if text.startswith(_PREFIX):
        text = text[len(_PREFIX) :]
    tokens = re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text)
    out: dict[str, int] = {}
    i = 0
    while i < len(tokens):
        word = tokens[i]
        n = int(word) if word.isdigit() else numbers.get(word)
        i += 1
        if n is None:
            continue
        for length in range(min(longest, len(tokens) - i), 0, -1):
            name = forms.get(tuple(tokens[i : i + length]))
            if name is not None:
                out[name] = out.get(name, 0) + n
                i += length
                break
    return out
