"""Vocabulary parsing, its error messages, and the text-embedding caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_sclip import PAPER_BACKGROUND, SclipModel, Vocabulary
from napari_sclip.errors import VocabularyError
from napari_sclip.templates import imagenet_templates

from .conftest import make_tiny_clip


def test_parse_forms_agree():
    a = Vocabulary.parse("nucleus; cytoplasm, cell body; debris")
    b = Vocabulary.parse("nucleus\ncytoplasm, cell body\n\n# a comment\ndebris\n")
    c = Vocabulary.parse(["nucleus", ["cytoplasm", "cell body"], "debris"])
    assert a == b == c
    assert a.names == ["nucleus", "cytoplasm", "debris"]
    assert a.queries == ["nucleus", "cytoplasm", "cell body", "debris"]
    assert list(a.query_labels) == [1, 2, 2, 3]
    assert Vocabulary.parse(a.to_text()) == a


def test_background_words_map_to_zero():
    v = Vocabulary.parse("cat; dog", background="sky, wall; floor")
    assert v.background == ("sky", "wall", "floor")
    assert list(v.query_labels) == [1, 2, 0, 0, 0]
    assert len(PAPER_BACKGROUND) == 26


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("", "vocabulary is empty"),
        ("  \n \n", "vocabulary is empty"),
        ("cat;; dog", "Class 2 is empty"),
        ("cat, , kitten", "empty synonym"),
        ("cat; dog; Cat", "'Cat' appears twice"),
        ("cat, kitten; kitten", "appears twice"),
    ],
)
def test_bad_vocabularies_say_what_to_do(text, fragment):
    with pytest.raises(VocabularyError, match=fragment):
        Vocabulary.parse(text)


def test_background_word_repeating_a_class_is_refused():
    with pytest.raises(VocabularyError, match="appears twice"):
        Vocabulary.parse("road; water", background="road")


def test_templates_are_the_80_openai_ones():
    t = imagenet_templates()
    assert len(t) == 80 and len(set(t)) == 80
    assert t[0] == "a bad photo of a {}." and "a photo of the small {}." in t


def test_embedding_rule_and_fast_text_path(tiny_model):
    """normalise-mean-normalise over the 80 templates; the cut context equals open_clip's full pass."""
    emb = tiny_model.embed(["red car"])
    prompts = [t.format("red car") for t in imagenet_templates()]
    tokens = tiny_model.tokenizer(prompts)
    with torch.no_grad():
        full = tiny_model.clip.encode_text(tokens).float()
    full = torch.nn.functional.normalize(full, dim=-1).mean(0)
    full = full / full.norm()
    torch.testing.assert_close(emb[0], full, atol=2e-6, rtol=0)


def test_phrase_is_never_encoded_twice(tmp_path):
    clip = make_tiny_clip(seed=5)
    model = SclipModel.from_open_clip(clip, cache_dir=tmp_path)
    seen: list[str] = []
    original = model.encode_prompts

    def spy(prompts, batch=512):
        seen.extend(prompts)
        return original(prompts, batch)

    model.encode_prompts = spy
    first = model.embed(["cat", "dog"])
    assert len(seen) == 160
    second = model.embed(["dog", "bird", "cat"])
    assert len(seen) == 240  # only "bird" was new
    torch.testing.assert_close(second[0], first[1])
    # a fresh model object with the same weights reads the disk cache
    other = SclipModel.from_open_clip(make_tiny_clip(seed=5), cache_dir=tmp_path)
    other.encode_prompts = None  # any encoding attempt would fail
    np.testing.assert_array_equal(other.embed(["cat", "bird"]).numpy(), torch.stack([first[0], second[1]]).numpy())


def test_different_weights_do_not_share_cache(tmp_path):
    a = SclipModel.from_open_clip(make_tiny_clip(seed=1), cache_dir=tmp_path)
    b = SclipModel.from_open_clip(make_tiny_clip(seed=2), cache_dir=tmp_path)
    assert a.identity != b.identity
    assert not torch.allclose(a.embed(["cat"]), b.embed(["cat"]))


def test_the_one_format_round_trips(tmp_path):
    """Presets and saved files read back unchanged (comments and background line included)."""
    from importlib import resources

    from napari_sclip.vocabulary import load_preset, preset_names

    for name in preset_names():
        text = resources.files("napari_sclip").joinpath(f"presets/{name}.txt").read_text("utf-8")
        vocab = load_preset(name)
        assert vocab.to_text() == text, name
        saved = vocab.save(tmp_path / f"{name}.txt")
        assert saved.read_text("utf-8") == text and Vocabulary.from_file(saved) == vocab
    v = Vocabulary.parse("a, b; c\n# background: x; y\n# a note", background="z, x")
    assert v.background == ("x", "y", "z") and v.notes == ("# a note",)
    assert Vocabulary.parse(v.to_text()) == v and Vocabulary.parse(v.to_text()).to_text() == v.to_text()


def test_cli_classes_file_keeps_background_words(tmp_path, monkeypatch):
    from napari_sclip.cli import build_parser, vocabulary_of
    from napari_sclip.vocabulary import load_preset

    path = load_preset("fluorescence").save(tmp_path / "v.txt")
    args = build_parser().parse_args(["segment", "x.png", "--classes-file", str(path), "-o", "o",
                                      "--background", "debris; dust"])  # fmt: skip
    vocab = vocabulary_of(args)
    assert vocab.background == (*load_preset("fluorescence").background, "debris", "dust")
    assert vocab.classes == load_preset("fluorescence").classes
