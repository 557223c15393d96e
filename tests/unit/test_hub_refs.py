"""Hugging Face Hub model paths: parsing ``hf:`` references and choosing one GGUF file."""

from __future__ import annotations

import pytest

from turnout.backends.local.hub import HubRef, parse_ref, select_gguf
from turnout.exceptions import InvalidRequest

REPO = [
    "README.md",
    "config.json",
    "tiny-Q4_K_M.gguf",
    "tiny-Q4_K_S.gguf",
    "tiny-Q8_0.gguf",
    "tiny-f16.gguf",
    "big/big-Q4_K_M-00001-of-00002.gguf",
    "big/big-Q4_K_M-00002-of-00002.gguf",
    "mmproj-tiny-f16.gguf",
]


@pytest.mark.parametrize(
    ("ref", "want"),
    [
        ("hf:acme/tiny", HubRef("acme", "tiny", None)),
        ("hf:acme/tiny@v1", HubRef("acme", "tiny", "v1")),
        ("hf:acme/tiny:Q4_K_M", HubRef("acme", "tiny", None, tag="Q4_K_M")),
        ("hf:acme/tiny:q8_0@refs/pr/1", HubRef("acme", "tiny", "refs/pr/1", tag="q8_0")),
        ("hf:acme/tiny/tiny-f16.gguf", HubRef("acme", "tiny", None, file="tiny-f16.gguf")),
        ("hf:acme/tiny/big/b.gguf@main", HubRef("acme", "tiny", "main", file="big/b.gguf")),
    ],
)
def test_parse_for_llama_cpp(ref: str, want: HubRef) -> None:
    assert parse_ref(ref, engine="llama_cpp") == want


@pytest.mark.parametrize(
    "ref",
    [
        "hf:acme/tiny/notes.txt",  # a file that is not GGUF
        "hf:acme/tiny/../x.gguf",
        "hf:acme/tiny/a.gguf:Q4",  # a file and a tag
        "hf:acme/tiny:",
        "hf:acme/tiny:Q4 K",
        "hf:acme/tiny:Q4@",
    ],
)
def test_bad_references(ref: str) -> None:
    with pytest.raises(InvalidRequest, match="hf:ORG/NAME"):
        parse_ref(ref, engine="llama_cpp")


@pytest.mark.parametrize("ref", ["hf:acme/tiny:Q4_K_M", "hf:acme/tiny/tiny-f16.gguf"])
def test_a_gguf_choice_is_for_the_llama_cpp_engine(ref: str) -> None:
    with pytest.raises(InvalidRequest, match="llama_cpp"):
        parse_ref(ref, engine="transformers")


@pytest.mark.parametrize(
    ("ref", "files"),
    [
        ("hf:acme/tiny:Q4_K_S", ["tiny-Q4_K_S.gguf"]),
        ("hf:acme/tiny:q8_0", ["tiny-Q8_0.gguf"]),
        ("hf:acme/tiny:F16", ["tiny-f16.gguf"]),  # not the mmproj file
        ("hf:acme/tiny/tiny-Q4_K_S.gguf", ["tiny-Q4_K_S.gguf"]),
        # one part of a split file brings every part, the first one first
        (
            "hf:acme/tiny/big/big-Q4_K_M-00002-of-00002.gguf",
            ["big/big-Q4_K_M-00001-of-00002.gguf", "big/big-Q4_K_M-00002-of-00002.gguf"],
        ),
    ],
)
def test_select(ref: str, files: list[str]) -> None:
    assert select_gguf(parse_ref(ref, engine="llama_cpp"), REPO) == files


def test_a_split_file_is_one_choice() -> None:
    names = ["m-Q4_K_M-00001-of-00002.gguf", "m-Q4_K_M-00002-of-00002.gguf", "README.md"]
    assert select_gguf(parse_ref("hf:a/m", engine="llama_cpp"), names) == names[:2]


def test_the_only_file_needs_no_tag() -> None:
    hub = parse_ref("hf:acme/one", engine="llama_cpp")
    assert select_gguf(hub, ["one.gguf", "mmproj-one.gguf", "config.json"]) == ["one.gguf"]


def test_ambiguous_tag_lists_the_matches() -> None:
    hub = parse_ref("hf:acme/tiny:Q4_K_M", engine="llama_cpp")
    with pytest.raises(InvalidRequest) as info:
        select_gguf(hub, REPO)
    assert info.value.code == "ambiguous_model_file"
    assert "2 GGUF files tagged 'Q4_K_M'" in info.value.message
    assert "tiny-Q4_K_M.gguf" in info.value.message
    assert "big/big-Q4_K_M-00001-of-00002.gguf (+1 parts)" in info.value.message
    assert "Q8_0" not in info.value.message


def test_no_tag_with_several_files_asks_for_one() -> None:
    with pytest.raises(InvalidRequest) as info:
        select_gguf(parse_ref("hf:acme/tiny", engine="llama_cpp"), REPO)
    assert info.value.code == "ambiguous_model_file"
    assert "hf:ORG/NAME:Q4_K_M" in info.value.message and "tiny-Q8_0.gguf" in info.value.message


@pytest.mark.parametrize("ref", ["hf:acme/tiny:Q2_K", "hf:acme/tiny/other.gguf"])
def test_missing_choice_lists_the_files(ref: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        select_gguf(parse_ref(ref, engine="llama_cpp"), REPO)
    assert info.value.code == "model_not_found" and info.value.param == "path"
    for name in ("tiny-Q4_K_M.gguf", "tiny-Q8_0.gguf", "tiny-f16.gguf"):
        assert name in info.value.message


def test_a_repository_without_gguf_files() -> None:
    with pytest.raises(InvalidRequest, match=r"no \.gguf files"):
        select_gguf(parse_ref("hf:acme/st", engine="llama_cpp"), ["model.safetensors"])
