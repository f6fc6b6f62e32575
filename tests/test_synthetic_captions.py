"""Structured and free captions of synthetic scenes."""

from __future__ import annotations

import re

import numpy as np
import pytest

from metricdepth.data.synthetic.captions import (
    captions_for,
    count_words,
    free_caption,
    number_word,
    pluralize,
    structured_caption,
    structured_captions,
    with_count,
)

FAMILIES = {
    "tabletop": ["cup", "bottle", "book", "phone", "laptop", "bowl", "toy car", "table"],
    "room": ["chair", "table", "sofa", "bed", "lamp", "shelf", "door", "window"],
    "street": ["car", "bus", "person", "tree", "traffic light", "building", "street sign"],
}
VOCAB = sorted({name for names in FAMILIES.values() for name in names})
# Written out by hand so the matcher below does not depend on the code under test.
PLURAL = {
    "bed": "beds", "book": "books", "bottle": "bottles", "bowl": "bowls", "building": "buildings",
    "bus": "buses", "car": "cars", "chair": "chairs", "cup": "cups", "door": "doors", "lamp": "lamps",
    "laptop": "laptops", "person": "people", "phone": "phones", "shelf": "shelves", "sofa": "sofas",
    "street sign": "street signs", "table": "tables", "toy car": "toy cars", "tree": "trees",
    "traffic light": "traffic lights", "window": "windows",
}  # fmt: skip
WORDS = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
]  # fmt: skip
VALUE = {"a": 1, "an": 1} | {w: i + 1 for i, w in enumerate(WORDS)}


def mentions(caption: str) -> list[tuple[str, bool, str | None]]:
    """(class, plural?, preceding token) for each vocabulary phrase, matched on whole words, longest first."""
    forms = [(tuple(n.split()), n, False) for n in VOCAB] + [
        (tuple(PLURAL[n].split()), n, True) for n in VOCAB
    ]
    forms.sort(key=lambda f: -len(f[0]))
    tokens = re.findall(r"[a-z]+(?:-[a-z]+)*|\d+", caption.lower())
    found, i = [], 0
    while i < len(tokens):
        for phrase, name, plural in forms:
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                found.append((name, plural, tokens[i - 1] if i else None))
                i += len(phrase)
                break
        else:
            i += 1
    return found


def test_mentions_matcher_is_word_and_phrase_aware():
    assert mentions("A city street with a toy car and two cars.") == [
        ("toy car", False, "a"),
        ("car", True, "two"),
    ]
    assert mentions("A busy street, a tabletop, a carpet, an indoor scene.") == []
    assert mentions("three traffic lights") == [("traffic light", True, "three")]


def test_number_word():
    assert [number_word(i) for i in (0, 1, 2, 7, 11, 19, 20)] == [
        "zero", "one", "two", "seven", "eleven", "nineteen", "twenty",
    ]  # fmt: skip
    assert number_word(21) == "21"
    assert number_word(150) == "150"
    with pytest.raises(ValueError):
        number_word(-1)


@pytest.mark.parametrize(
    ("name", "plural"),
    [
        ("cup", "cups"), ("person", "people"), ("bus", "buses"), ("shelf", "shelves"), ("glass", "glasses"),
        ("bench", "benches"), ("box", "boxes"), ("knife", "knives"), ("mouse", "mice"), ("child", "children"),
        ("dish", "dishes"), ("buzz", "buzzes"), ("toy", "toys"), ("cherry", "cherries"), ("sofa", "sofas"),
        ("traffic light", "traffic lights"), ("street sign", "street signs"), ("toy car", "toy cars"),
        ("wine glass", "wine glasses"), ("police person", "police people"),
    ],
)  # fmt: skip
def test_pluralize(name, plural):
    assert pluralize(name) == plural


def test_with_count_articles_and_numbers():
    assert with_count("cup", 1) == "a cup"
    assert with_count("apple", 1) == "an apple"
    assert with_count("umbrella", 1) == "an umbrella"
    assert with_count("unicorn", 1) == "a unicorn"
    assert with_count("hour glass", 1) == "an hour glass"
    assert with_count("cup", 2) == "two cups"
    assert with_count("person", 20) == "twenty people"
    assert with_count("bus", 21) == "21 buses"
    assert with_count("traffic light", 3) == "three traffic lights"
    with pytest.raises(ValueError):
        with_count("cup", 0)


def test_structured_caption_exact_strings():
    assert structured_caption({"cup": 1}) == "An image with a cup."
    assert structured_caption({"cup": 1, "bowl": 1}) == "An image with a bowl and a cup."
    assert (
        structured_caption({"cup": 1, "bowl": 1}, order=["cup", "bowl"]) == "An image with a cup and a bowl."
    )
    three = {"chair": 2, "table": 1, "lamp": 1}
    assert structured_caption(three, order=["chair", "table", "lamp"]) == (
        "An image with two chairs, a table, and a lamp."
    )
    assert structured_caption(three) == "An image with two chairs, a lamp, and a table."
    four = {"person": 3, "bus": 1, "traffic light": 25, "tree": 12}
    assert (
        structured_caption(four) == "An image with a bus, three people, 25 traffic lights, and twelve trees."
    )
    assert structured_caption({}) == "An image with no recognisable objects."


@pytest.mark.parametrize("order", [["cup"], ["cup", "bowl", "lamp"], ["cup", "cup"], ["cup", "lamp"]])
def test_structured_caption_rejects_bad_order(order):
    with pytest.raises(ValueError):
        structured_caption({"cup": 1, "bowl": 2}, order=order)


def test_structured_caption_rejects_zero_count():
    with pytest.raises(ValueError):
        structured_caption({"cup": 0})


def test_structured_captions_deterministic_and_distinct():
    counts = {"car": 2, "bus": 1, "person": 4, "tree": 1}
    a = structured_captions(counts, np.random.default_rng(7), n=5)
    b = structured_captions(counts, np.random.default_rng(7), n=5)
    assert a == b
    assert len(a) == 5 and len(set(a)) == 5
    assert all(count_words(c, VOCAB) == counts for c in a)
    many = {structured_captions(counts, np.random.default_rng(s), n=1)[0] for s in range(40)}
    assert len(many) > 5  # the orders really are shuffled


def test_structured_captions_fewer_orders_than_requested():
    rng = np.random.default_rng(0)
    two = structured_captions({"cup": 1, "bowl": 2}, rng, n=3)
    assert sorted(two) == ["An image with a cup and two bowls.", "An image with two bowls and a cup."]
    assert structured_captions({"cup": 1}, rng, n=3) == ["An image with a cup."]
    assert structured_captions({}, rng, n=3) == ["An image with no recognisable objects."]
    three = structured_captions({"cup": 1, "bowl": 2, "book": 3}, rng, n=10)
    assert len(three) == 6 and len(set(three)) == 6


def test_structured_captions_many_classes():
    counts = {name: i + 1 for i, name in enumerate(FAMILIES["tabletop"])}
    caps = structured_captions(counts, np.random.default_rng(1), n=8)
    assert len(set(caps)) == 8
    assert all(count_words(c, VOCAB) == counts for c in caps)


def test_count_words_round_trip():
    rng = np.random.default_rng(123)
    for _ in range(300):
        k = int(rng.integers(0, len(VOCAB) + 1))
        names = rng.choice(VOCAB, size=k, replace=False)
        counts = {str(n): int(rng.choice([1, 1, 2, 3, int(rng.integers(1, 40))])) for n in names}
        order = [str(n) for n in rng.permutation(sorted(counts))]
        assert count_words(structured_caption(counts), VOCAB) == counts
        assert count_words(structured_caption(counts, order), VOCAB) == counts


def test_count_words_multiword_and_irregular():
    caption = "An image with a toy car, two cars, twenty people, 21 buses, and an unknown thing."
    assert count_words(caption, VOCAB) == {"toy car": 1, "car": 2, "person": 20, "bus": 21}


def check_free(caption: str, counts: dict[str, int]) -> set[str]:
    named = set()
    for name, plural, before in mentions(caption):
        assert name in counts, f"{caption!r} names invisible {name!r}"
        assert plural == (counts[name] > 1), f"{caption!r}: wrong number for {name!r}"
        if before in VALUE or (before or "").isdigit():
            stated = int(before) if before.isdigit() else VALUE[before]
            assert stated == counts[name], f"{caption!r}: wrong count for {name!r}"
        named.add(name)
    return named


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_free_captions_name_only_visible_classes(family):
    rng = np.random.default_rng(sorted(FAMILIES).index(family))
    prefixes = set()
    for _ in range(300):
        k = int(rng.integers(1, len(FAMILIES[family]) + 1))
        names = rng.choice(FAMILIES[family], size=k, replace=False)
        counts = {str(n): int(rng.choice([1, 1, 2, 3, 25])) for n in names}
        caption = free_caption(counts, family, rng)
        named = check_free(caption, counts)
        assert 1 <= len(named) <= 2, caption
        assert caption[0].isupper() and caption.endswith(".")
        prefixes.add(" ".join(caption.split()[:2]))
    assert len(prefixes) >= 4  # several templates per family are used


def test_free_caption_deterministic():
    counts = {"sofa": 1, "lamp": 2, "chair": 3}
    a = [free_caption(counts, "room", np.random.default_rng(s)) for s in range(10)]
    assert a == [free_caption(counts, "room", np.random.default_rng(s)) for s in range(10)]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_zero_objects(family):
    for seed in range(10):
        caption = free_caption({}, family, np.random.default_rng(seed))
        assert mentions(caption) == [] and caption.endswith(".")
        caps = captions_for([], family, np.random.default_rng(seed))
        assert caps[0] == "An image with no recognisable objects." and len(caps) == 2
        assert mentions(caps[1]) == []


def test_tabletop_with_only_a_table():
    for seed in range(10):
        caption = free_caption({"table": 1}, "tabletop", np.random.default_rng(seed))
        assert check_free(caption, {"table": 1}) == {"table"}


def test_free_caption_unknown_family():
    with pytest.raises(ValueError):
        free_caption({"cup": 1}, "forest", np.random.default_rng(0))


def test_captions_for():
    instances = ["car", "car", "bus", "person", "car", "traffic light"]
    caps = captions_for(instances, "street", np.random.default_rng(3), n_structured=3)
    assert len(caps) == 4 and len(set(caps[:3])) == 3
    counts = {"car": 3, "bus": 1, "person": 1, "traffic light": 1}
    assert all(count_words(c, VOCAB) == counts for c in caps[:3])
    assert caps[:3] == structured_captions(counts, np.random.default_rng(3), n=3)
    assert 1 <= len(check_free(caps[3], counts)) <= 2
    assert caps == captions_for(instances, "street", np.random.default_rng(3), n_structured=3)
