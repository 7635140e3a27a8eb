"""Input that is never silently misread (issue 14): byte-order marks, line ends, format detection, the treebank
tokenizer for plain text, and sentences of any length in bounded memory."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from lm_corpus import write_word_corpus
from lstmkit.tagger import api as tagger_api
from lstmkit.cli import main
from lstmkit.data import load_corpus, read_conllu, read_plain, read_utf8_text, treebank_tokens
from lstmkit.tagger.api import detect_format, load_tagger, tag_sentences, tag_text

TINY = ["--model.word_embedding_size=12", "--model.char_embedding_size=8", "--model.char_hidden_size=10",
        "--model.hidden_size=16", "--batch_size=8", "--optim.lr=0.02", "--train.progress=false"]
BOM = "\ufeff"


@pytest.fixture(scope="module")
def run_dir(treebank, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train-tagger", "--data", str(treebank), "--run-dir", str(out), "--train.max_epochs=2", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def tagger(run_dir):
    return load_tagger(run_dir)


def call(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_reader_drops_a_byte_order_mark(tmp_path, treebank, run_dir, capsys, monkeypatch):
    conllu = (treebank / "tiny-ud-dev.conllu").read_text(encoding="utf-8")
    with_bom = tmp_path / "bom.conllu"
    with_bom.write_text(BOM + conllu, encoding="utf-8")
    plain = tmp_path / "plain.conllu"
    plain.write_text(conllu, encoding="utf-8")
    assert read_utf8_text(with_bom) == conllu
    assert [s.forms for s in read_conllu(with_bom)] == [s.forms for s in read_conllu(plain)]
    code, tagged_bom, err = call(capsys, "tag", run_dir, "--input", with_bom)
    assert code == 0, err
    code, tagged, _ = call(capsys, "tag", run_dir, "--input", plain)
    assert tagged_bom == tagged and tagged.startswith(("#", "1\t"))  # CoNLL-U out, not word/TAG lines
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((BOM + conllu).encode()), encoding="utf-8"))
    code, from_stdin, _ = call(capsys, "tag", run_dir, "--input", "-")
    assert code == 0 and from_stdin == tagged
    words = tmp_path / "words.txt"
    words.write_text(BOM + "the cat\n", encoding="utf-8")
    assert read_plain(words) == [["the", "cat"]]
    assert read_plain([BOM + "the cat"]) == [["the", "cat"]]
    corpus = write_word_corpus(tmp_path / "corpus")
    train = corpus / "ptb.train.txt"
    train.write_text(BOM + train.read_text(encoding="utf-8"), encoding="utf-8")
    assert not any(token.startswith(BOM) for token in load_corpus(corpus).vocab.itos)


def test_plain_lines_end_only_at_line_breaks(tagger):
    text = "the cat\u2028sees\x0ca dog\nthe\x85bird\rsings\r\nmy sister\n"  # 3 lines; U+2028, FF, NEL, CR inside
    result = tag_text(tagger, text, "plain", pretokenized=True)
    assert result.text.count("\n") == 3 and result.sentences == 3
    assert tag_text(tagger, text, "plain").text.count("\n") == 3


def test_plain_text_is_never_taken_for_conllu(tagger, run_dir, tmp_path, capsys):
    text = "# Shopping\nthe cat sees a dog\n"
    assert detect_format(text) == "plain"
    assert detect_format(BOM + "# sent_id = 1\n1\tthe\t_\t_\t_\t_\t_\t_\t_\t_\n") == "conllu"
    assert detect_format("\n\n# a\n# b\n") == "plain"
    source = tmp_path / "notes.txt"
    source.write_text(text, encoding="utf-8")
    code, out, err = call(capsys, "tag", run_dir, "--input", source)
    assert code == 0, err
    assert out.splitlines()[0].startswith("#/") and len(out.splitlines()) == 2
    with pytest.raises(SystemExit):
        main(["tag", "--help"])
    assert "never read as CoNLL-U" in " ".join(capsys.readouterr().out.split())


def test_treebank_tokens_split_as_ud_english():
    assert treebank_tokens("The dog can't run.") == ["The", "dog", "ca", "n't", "run", "."]
    assert treebank_tokens('He said "hi" to John\'s cat, didn\'t he?') == [
        "He", "said", '"', "hi", '"', "to", "John", "'s", "cat", ",", "did", "n't", "he", "?"]
    assert treebank_tokens("I'm in the U.S. (for $3.50)") == ["I", "'m", "in", "the", "U.S.", "(", "for", "$", "3.50", ")"]
    assert treebank_tokens("   ") == []


def test_tag_splits_plain_text_unless_pretokenized(run_dir, tmp_path, capsys):
    source = tmp_path / "raw.txt"
    source.write_text("The dog can't run.\n", encoding="utf-8")
    code, out, err = call(capsys, "tag", run_dir, "--input", source)
    assert code == 0, err
    assert [item.rsplit("/", 1)[0] for item in out.split()] == ["The", "dog", "ca", "n't", "run", "."]
    code, out, _ = call(capsys, "tag", run_dir, "--input", source, "--pretokenized")
    assert [item.rsplit("/", 1)[0] for item in out.split()] == ["The", "dog", "can't", "run."]


def test_output_path_that_is_a_directory_is_one_line(run_dir, tmp_path, capsys):
    source = tmp_path / "raw.txt"
    source.write_text("the cat\n", encoding="utf-8")
    code, out, err = call(capsys, "tag", run_dir, "--input", source, "--output", tmp_path)
    assert code == 2 and out == ""
    assert err == f"lstmkit tag: error: --output {tmp_path} is a directory; name a file to write\n"


def test_long_sentences_are_tagged_in_bounded_windows(tagger, monkeypatch):
    """A 2,000-word line goes through the model in windows of at most WINDOW_WORDS words; short sentences are
    tagged whole, exactly as before."""
    lengths = []
    forward = tagger.model.forward

    sizes = []

    def recording(batch, *args, **kwargs):
        lengths.append(int(batch.lengths.max()))
        sizes.append(batch.word_ids.numel())
        return forward(batch, *args, **kwargs)

    monkeypatch.setattr(tagger.model, "forward", recording)
    words = (["the", "cat", "sees", "a", "dog", "."] * 400)[:2000]
    tags = tag_sentences(tagger, [words, ["the", "cat"]])
    assert len(tags[0]) == 2000 and len(tags[1]) == 2
    assert max(lengths) <= tagger_api.WINDOW_WORDS
    monkeypatch.setattr(tagger_api, "BATCH_WORDS", 1000)
    sizes.clear()
    tag_sentences(tagger, [words] * 3)
    assert max(sizes) <= 1000, "a batch of windows holds at most BATCH_WORDS padded words"
    whole = tag_sentences(tagger, [words[:300]])[0]
    monkeypatch.setattr(tagger_api, "WINDOW_WORDS", 120)
    monkeypatch.setattr(tagger_api, "WINDOW_CONTEXT", 30)
    windowed = tag_sentences(tagger, [words[:300]])[0]
    agree = sum(a == b for a, b in zip(whole, windowed)) / len(whole)
    assert len(windowed) == 300 and agree >= 0.95, agree
