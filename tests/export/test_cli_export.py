"""``lstmkit export RUN --format onnx|pt2 --out FILE`` on tiny trained runs: the files run (onnxruntime /
torch.export.load) and agree with the run's own model; bad input is one line, exit code 2, nothing written."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import onnxruntime as ort
import pytest
import torch

from helpers import REPO
from lm_corpus import TINY_OVERRIDES, write_word_corpus
from lstmkit.cli import main
from lstmkit.tagger.data import encode_sentences, make_batch
from lstmkit.export import METADATA_FILE
from lstmkit.lm.api import load_language_model
from lstmkit.tagger.api import load_tagger, tag_sentences

TAGGER = ["--model.word_embedding_size=8", "--model.char_embedding_size=6", "--model.char_hidden_size=6",
          "--model.hidden_size=8", "--batch_size=8", "--loop.progress=false", "--loop.max_epochs=1"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, treebank):
    """A tiny language-model run, the same with impl='reference', and a tiny tagger run."""
    root = tmp_path_factory.mktemp("runs")
    data = write_word_corpus(root / "corpus")
    for name, extra in (("lm", []), ("lm-reference", ["--model.impl=reference"])):
        assert main(["train-lm", "--data", str(data), "--run-dir", str(root / name), *TINY_OVERRIDES,
                     "--train.max_steps=3", "--train.eval_every=3", *extra]) == 0
    assert main(["train-tagger", "--data", str(treebank), "--out", str(root / "tagger"), *TAGGER]) == 0
    return root


def export(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["export", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_language_model_to_onnx_and_pt2(runs, tmp_path, capsys):
    lm = load_language_model(runs / "lm")
    words = torch.tensor([[lm.vocab.stoi.get(w, 0)] for w in "the cat saw the dog".split()])  # (T=5, B=1)
    with torch.no_grad():
        want = lm.model.logits(lm.model(words).output)
    zeros = [t for h, c in lm.model.init_hidden(1) for t in (h, c)]

    code, out, _ = export(capsys, runs / "lm", "--format", "onnx", "--out", tmp_path / "lm.onnx")
    assert code == 0 and "language model" in out
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, [words.numpy(), *(t.numpy() for t in zeros)])))[0]
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["lstmkit.kind"] == "language_model" and json.loads(meta["lstmkit.vocab"]) == list(lm.vocab.itos)

    code, _, _ = export(capsys, runs / "lm", "--format", "pt2", "--out", tmp_path / "lm.pt2")
    assert code == 0
    extra = {METADATA_FILE: ""}
    program = torch.export.load(tmp_path / "lm.pt2", extra_files=extra)
    torch.testing.assert_close(program.module()(words, *zeros)[0], want, rtol=1e-5, atol=1e-6)
    assert json.loads(extra[METADATA_FILE])["lstmkit.tokenizer"] == lm.tokenizer


def test_tagger_to_onnx_and_pt2(runs, tmp_path, capsys):
    tagger = load_tagger(runs / "tagger")
    sentences = [["The", "old", "man", "saw", "a", "dog", "."], ["Anna", "likes", "Paris", "!"]]
    want = tag_sentences(tagger, sentences)
    batch = make_batch(encode_sentences(sentences, tagger.vocabs, with_tags=False), tagger.vocabs)
    inputs = [getattr(batch, n) for n in ("word_ids", "lengths", "char_ids", "char_lengths", "word_index")]
    itos = tagger.vocabs.tags.itos

    code, _, _ = export(capsys, runs / "tagger", "--format", "onnx", "--out", tmp_path / "tagger.onnx")
    assert code == 0
    session = ort.InferenceSession(str(tmp_path / "tagger.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    _, tags = session.run(None, dict(zip(names, (t.numpy() for t in inputs))))
    assert [[itos[t] for t in row[: len(s)]] for row, s in zip(tags, sentences)] == want

    code, _, _ = export(capsys, runs / "tagger", "--format", "pt2", "--out", tmp_path / "tagger.pt2",
                        "--checkpoint", "last")
    assert code == 0
    _, tags = torch.export.load(tmp_path / "tagger.pt2").module()(*inputs)
    last = tag_sentences(load_tagger(runs / "tagger", "last"), sentences)
    assert [[itos[t] for t in row[: len(s)]] for row, s in zip(tags.tolist(), sentences)] == last


def damaged_copy(runs, tmp_path):
    copy = tmp_path / "damaged"
    shutil.copytree(runs / "tagger", copy)
    for weights in copy.glob("*/model.safetensors"):
        weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    return copy


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing run", "no such run directory"),
        ("not a run", "is not a run directory"),
        ("damaged checkpoint", "model.safetensors is damaged"),
        ("missing output folder", "cannot write"),
        ("output is a folder", "cannot write"),
        ("unknown format", "argument --format: invalid choice: 'tflite'"),
        ("output is a pipe", "is not a regular file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, message, runs, tmp_path, capsys):
    run, fmt, out = runs / "tagger", "onnx", tmp_path / "out" / "model.file"
    out.parent.mkdir()
    if case == "missing run":
        run = tmp_path / "nowhere"
    elif case == "not a run":
        run = tmp_path / "out"
    elif case == "damaged checkpoint":
        run = damaged_copy(runs, tmp_path)
    elif case == "missing output folder":
        out = tmp_path / "no" / "such" / "folder" / "model.onnx"
    elif case == "output is a folder":
        out = tmp_path / "out" / "folder"
        out.mkdir()
    elif case == "unknown format":
        fmt = "tflite"
    elif case == "output is a pipe":  # renamed over, a device or a pipe would be replaced by the file
        out = tmp_path / "out" / "pipe"
        os.mkfifo(out)
    before = sorted(os.listdir(tmp_path / "out"))
    code, stdout, err = export(capsys, run, "--format", fmt, "--out", out)
    assert code == 2, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path / "out")) == before  # no file, no temporary left behind
    assert not out.is_file()
    if case == "output is a pipe":
        assert stat.S_ISFIFO(out.stat().st_mode)


def test_a_failed_export_keeps_the_previous_file(runs, tmp_path, capsys):
    out = tmp_path / "out" / "model.pt2"
    out.parent.mkdir()
    out.write_bytes(b"previous")
    code, _, err = export(capsys, damaged_copy(runs, tmp_path), "--format", "pt2", "--out", out)
    assert code == 2 and "damaged" in err and out.read_bytes() == b"previous"
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.pt2"]


def test_every_impl_exports(runs, tmp_path, capsys):
    """A run trained with impl='reference' exports to pt2 (each layer one scan node over the reference step, T and
    B symbolic) and to ONNX (whose graph does not depend on the impl); both equal the run's model at a length
    other than the example's."""
    lm = load_language_model(runs / "lm-reference")
    words = torch.randint(len(lm.vocab.itos), (7, 2))  # (T, B)
    zeros = [t for h, c in lm.model.init_hidden(2) for t in (h, c)]
    with torch.no_grad():
        want = lm.model.logits(lm.model(words).output)
    code, _, _ = export(capsys, runs / "lm-reference", "--format", "pt2", "--out", tmp_path / "lm.pt2")
    assert code == 0
    program = torch.export.load(tmp_path / "lm.pt2")
    scans = [n for n in program.graph.nodes if n.op == "call_function" and "scan" in str(n.target)]
    assert len(scans) == len(lm.model.layers)
    torch.testing.assert_close(program.module()(words, *zeros)[0], want, rtol=1e-5, atol=1e-6)
    code, _, _ = export(capsys, runs / "lm-reference", "--format", "onnx", "--out", tmp_path / "lm.onnx")
    assert code == 0
    session = ort.InferenceSession(str(tmp_path / "lm.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, dict(zip(names, [words.numpy(), *(t.numpy() for t in zeros)])))[0]
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)


def test_readme_example_tags_with_onnxruntime_alone(runs, tmp_path, capsys):
    """README's "PyTorch 2 and export" example (the block fenced ```python onnxruntime), run in a fresh process
    beside an exported tagger, with every lstmkit module made unimportable."""
    code, _, _ = export(capsys, runs / "tagger", "--format", "onnx", "--out", tmp_path / "tagger.onnx")
    assert code == 0
    blocks = re.findall(r"```python onnxruntime\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)
    assert len(blocks) == 1
    (tmp_path / "example.py").write_text(blocks[0])
    guard = ("import sys\n"
             "class Refuse:\n"
             "    def find_spec(self, name, path=None, target=None):\n"
             "        if name.split('.')[0] == 'lstmkit': raise ImportError('lstmkit must not be imported here')\n"
             "sys.meta_path.insert(0, Refuse())\n"
             "exec(compile(open('example.py').read(), 'README.md', 'exec'), {'__name__': '__main__'})\n"
             "assert not [m for m in sys.modules if m.split('.')[0] == 'lstmkit']\n")
    result = subprocess.run([sys.executable, "-c", guard], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sentence = "The old man saw a dog .".split()
    want = tag_sentences(load_tagger(runs / "tagger"), [sentence])[0]
    assert result.stdout.strip() == " ".join(f"{w}/{t}" for w, t in zip(sentence, want))
