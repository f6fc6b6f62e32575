import random
import re
from collections import Counter
from pathlib import Path

import pytest

from metricdepth.rsa.captions import (
    CAPTION_KINDS,
    CAPTION_LINES,
    CaptionError,
    caption_file_for,
    is_structured,
    read_caption_file,
    select_captions,
    structured_caption,
    structured_captions,
)


def items_of(caption: str) -> Counter:
    """The multiset of item phrases of a structured caption (order ignored)."""
    body = caption.removeprefix("An image with ").removesuffix(".")
    return Counter(part.removeprefix("and ") for part in body.split(", "))


# --- structured_caption --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], "An image."),
        (["", "  "], "An image."),
        (["chair"], "An image with a chair."),
        (["apple"], "An image with an apple."),
        (["umbrella"], "An image with an umbrella."),
        (["chair", "table"], "An image with a chair, and a table."),
        (["chair", "table", "chair"], "An image with two chairs, and a table."),
        (["chair", "table", "chair", "orange"], "An image with two chairs, a table, and an orange."),
        (["traffic light", "traffic light"], "An image with two traffic lights."),
        (["dining table"], "An image with a dining table."),
        (["wine glass"] * 3 + ["car"], "An image with three wine glasses, and a car."),
        (["person", "person", "mouse", "mouse", "mouse"], "An image with two people, and three mice."),
        (["knife", "knife", "sheep", "sheep"], "An image with two knives, and two sheep."),
        # already-plural COCO names are not pluralised twice (inflect alone gives "skiss")
        (["skis", "skis", "scissors", "scissors"], "An image with two skis, and two scissors."),
        (["bus"] * 21, "An image with twenty-one buses."),
    ],
)
def test_structured_caption_exact(names, expected):
    assert structured_caption(names) == expected


def test_names_are_normalised():
    assert structured_caption([" Traffic   Light ", "traffic light", "CHAIR"]) == (
        "An image with two traffic lights, and a chair."
    )


def test_counts_keep_first_occurrence_order():
    names = ["tv", "chair", "tv", "bed", "chair", "tv"]
    assert structured_caption(names) == "An image with three tvs, two chairs, and a bed."


def test_shuffle_is_a_deterministic_permutation():
    names = ["chair", "table", "chair", "traffic light", "person", "cup", "cup", "cup", "bed"]
    plain = structured_caption(names)
    shuffled = [structured_caption(names, rng=random.Random(seed)) for seed in range(20)]
    for caption in shuffled:
        assert caption.startswith("An image with ") and caption.endswith(".")
        assert items_of(caption) == items_of(plain)
    assert len(set(shuffled)) > 1  # the order really changes
    again = [structured_caption(names, rng=random.Random(seed)) for seed in range(20)]
    assert again == shuffled
    assert names == ["chair", "table", "chair", "traffic light", "person", "cup", "cup", "cup", "bed"]


def test_structured_captions_five_orders():
    names = ["sink", "sink", "mirror", "handbag", "bottle", "bottle", "wall", "cabinet", "towel"]
    captions = structured_captions(names, 5, seed=3)
    assert len(captions) == 5
    expected = Counter(
        {
            "two sinks": 1,
            "a mirror": 1,
            "a handbag": 1,
            "two bottles": 1,
            "a wall": 1,
            "a cabinet": 1,
            "a towel": 1,
        }
    )
    assert all(items_of(c) == expected for c in captions)
    assert len(set(captions)) > 1
    assert structured_captions(names, 5, seed=3) == captions
    assert structured_captions(names, 5, seed=4) != captions
    assert structured_captions(names) == structured_captions(names, 5, seed=0)
    with pytest.raises(ValueError):
        structured_captions(names, 0)


# --- caption files -------------------------------------------------------------------------------

FIFTEEN = [f"A bathroom with a white sink, take {i}." for i in range(1, 11)] + [
    "An image with two sinks, a mirror, and a towel.",
    "An image with a mirror, two sinks, and a towel.",
    "An image with a towel, a mirror, and two sinks.",
    "An image with two sinks, a towel, and a mirror.",
    "An image with a mirror, a towel, and two sinks.",
]


def test_read_caption_file_15_lines(tmp_path):
    path = tmp_path / "rgb_00045.txt"
    path.write_text("".join(f"{c}  \n" for c in FIFTEEN) + "\n", encoding="utf-8")
    captions = read_caption_file(path)
    assert captions == FIFTEEN
    assert len(captions) == CAPTION_LINES
    assert [is_structured(c) for c in captions] == [False] * 10 + [True] * 5


def test_read_caption_file_other_counts_and_unicode(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("\n  Une scène – café  \n\n", encoding="utf-8")
    assert read_caption_file(str(path)) == ["Une scène – café"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "does not exist"),
        (b"", "no caption"),
        (b"\n  \n\t\n", "no caption"),
        (b"caf\xe9\n", "not UTF-8"),
    ],
)
def test_read_caption_file_errors_name_the_file(tmp_path, content, reason):
    path = tmp_path / "broken_caption.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CaptionError, match=reason) as info:
        read_caption_file(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_caption_file_for_reference_layout(tmp_path):
    root = tmp_path / "nyu" / "official_splits" / "test"
    captions_dir = tmp_path / "text_all" / "nyu" / "test"
    image = root / "bathroom" / "rgb_00045.jpg"
    assert (
        caption_file_for(image, captions_dir, image_root=root) == captions_dir / "bathroom" / "rgb_00045.txt"
    )
    assert caption_file_for(str(image), str(captions_dir), image_root=str(root)) == (
        captions_dir / "bathroom" / "rgb_00045.txt"
    )
    kitti = Path("raw/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000006.png")
    assert caption_file_for(kitti, "text", image_root="raw") == Path(
        "text/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000006.txt"
    )


def test_caption_file_for_flat_layout(tmp_path):
    assert (
        caption_file_for(tmp_path / "a" / "b" / "photo.v2.JPG", tmp_path / "caps")
        == tmp_path / "caps" / "photo.v2.txt"
    )


def test_caption_file_for_image_outside_root(tmp_path):
    with pytest.raises(CaptionError, match="not under the image root"):
        caption_file_for(tmp_path / "elsewhere" / "x.png", tmp_path / "caps", image_root=tmp_path / "images")


# --- caption kinds -------------------------------------------------------------------------------


def test_is_structured():
    assert is_structured("An image with a chair.")
    assert is_structured("  an IMAGE WITH two cars, and a bus.")
    assert is_structured("An image.")
    assert not is_structured("An image of a kitchen with a table.")
    assert not is_structured("A bathroom with a white sink.")
    assert not is_structured("")


def test_select_captions_each_kind():
    assert CAPTION_KINDS == ("all", "structured", "free", "none")
    assert select_captions(FIFTEEN, "all") == FIFTEEN
    assert select_captions(FIFTEEN, "structured") == FIFTEEN[10:]
    assert select_captions(FIFTEEN, "free") == FIFTEEN[:10]
    assert select_captions(FIFTEEN, "none") == [""]
    assert select_captions([], "none") == [""]


def test_select_captions_errors():
    with pytest.raises(CaptionError, match="no structured captions"):
        select_captions(FIFTEEN[:10], "structured")
    with pytest.raises(CaptionError, match="no free captions"):
        select_captions(FIFTEEN[10:], "free")
    with pytest.raises(CaptionError):
        select_captions([], "all")
    with pytest.raises(ValueError, match=re.escape("all, structured, free, none")) as info:
        select_captions(FIFTEEN, "llava")
    assert not isinstance(info.value, CaptionError)
