"""Tests for the ``lstmkit explain`` walkthrough: its claims hold, and what it prints is what it computed."""

from pathlib import Path

import pytest
import torch

import lstmkit
from lstmkit.cli import main
from lstmkit.explain import walkthrough
from lstmkit.explain.walkthrough import (
    Claim,
    ExplainError,
    ExplainModel,
    _close,
    _differs,
    _has_shape,
    _vector,
    build_setup,
    explain_text,
    render,
    saturation_path,
)

CONFIGS = {
    "default": {},
    "one step": dict(steps=1),
    "2 layers": dict(layers=2),
    "bidirectional": dict(bidirectional=True),
    "proj": dict(proj_size=2),
    "3 layers bidirectional proj": dict(layers=3, bidirectional=True, proj_size=1),
    "other sizes": dict(input_size=7, hidden_size=5, steps=8, batch=1, seed=3),
    "2 layers no dropout": dict(layers=2, dropout=0.0),
}


def claims_of(sections) -> dict[str, Claim]:
    claims = [claim for section in sections for claim in section.claims]
    names = {claim.name: claim for claim in claims}
    assert len(names) == len(claims), "claim names must be unique"
    return names


@pytest.mark.parametrize("options", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_claim_holds(options):
    sections = walkthrough(**options)
    claims = claims_of(sections)
    failed = [claim for claim in claims.values() if not claim.passed]
    assert not failed
    assert len(claims) >= 25
    text = render(sections)
    assert f"{len(claims)} of {len(claims)} checks passed." in text and "FAILED" not in text


def test_claims_cover_the_topics_of_each_option():
    base = claims_of(walkthrough())
    for letter in "ifgo":
        assert any(name.startswith("chunk ") and f"x @ W_{letter}^T" in name for name in base)
    assert "the loop's h at every step equals output of the one call (lstmkit.LSTM)" in base
    assert "torch.nn.LSTM with the same weights gives the same output" in base
    assert "output is (T, B, D * P) = (5, 2, 3)" in base  # the shapes section, with the default sizes
    assert not any("dropout" in name or "backward" in name or "W_hr" in name for name in base)

    full = claims_of(walkthrough(layers=2, bidirectional=True, proj_size=2))
    assert "the stacked module's output equals the layers called one by one" in full
    assert "layer 0's h_n and c_n are the same in training: dropout comes after it" in full
    assert "the backward final state h_n[-1] is output[0, :, P:]" in full
    assert "output[-1, :, P:] is not the backward final state" in full
    assert "layer 1 backward: h = (o * tanh(c)) @ W_hr^T at every step" in full
    assert "h_n is (L * D, B, P) = (4, 2, 2)" in full
    assert "c_n keeps H = 3 features" in full

    no_dropout = claims_of(walkthrough(layers=2, dropout=0.0))
    assert not any("training" in name for name in no_dropout)


def test_printed_numbers_are_the_models():
    setup = build_setup(layers=2, bidirectional=True, seed=4)
    text = render(walkthrough(layers=2, bidirectional=True, seed=4))
    with torch.no_grad():
        output, (h_n, _) = setup.model(setup.x)
    assert _vector(h_n[-1, 0]) in text  # the backward final state of sequence 0
    assert _vector(output[0, 0, 3:]) in text
    for row in setup.model.weight_ih_l0:
        assert _vector(row) in text
    assert text != render(walkthrough(layers=2, bidirectional=True, seed=5))


def test_setup_is_the_requested_model_and_leaves_the_random_state_alone():
    state = torch.get_rng_state()
    setup = build_setup(input_size=6, hidden_size=5, steps=3, batch=4, layers=2, bidirectional=True, proj_size=2, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert isinstance(setup.model, lstmkit.LSTM) and not setup.model.training
    assert setup.x.shape == (3, 4, 6) and setup.x.dtype == torch.float64
    assert setup.model.weight_hh_l1_reverse.shape == (20, 2)
    assert setup.model.weight_ih_l1.shape == (20, 4)
    again = build_setup(input_size=6, hidden_size=5, steps=3, batch=4, layers=2, bidirectional=True, proj_size=2, seed=1)
    assert torch.equal(setup.x, again.x) and torch.equal(setup.model.weight_ih_l0, again.model.weight_ih_l0)
    assert build_setup(layers=1, dropout=0.5).model.dropout == 0.0  # dropout only between layers


def test_claim_helpers_can_fail():
    a = torch.zeros(2, 3, dtype=torch.float64)
    assert _close("same", a, a.clone()).passed
    assert not _close("off", a, a + 1e-6).passed
    assert not _close("shapes", a, a[:1]).passed
    assert _differs("differs", a, a + 1).passed and not _differs("same", a, a).passed
    assert _has_shape("shape", a, (2, 3)) == Claim("shape", "(2, 3)", True)
    assert not _has_shape("shape", a, (3, 2)).passed


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(hidden_size=3, proj_size=3), "proj size must be 0 .* hidden size - 1 = 2, got 3"),
        (dict(steps=0), "steps must be at least 1, got 0"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0"),
    ],
)
def test_bad_sizes_raise(options, message):
    with pytest.raises(ExplainError, match=message):
        walkthrough(**options)


def test_command_prints_the_walkthrough(capsys):
    assert main(["explain"]) == 0
    out = capsys.readouterr().out
    for heading in ("1. The model", "2. Weight layout", "3. One step by hand", "4. The loop and the one call",
                    "8. Shapes"):
        assert heading in out
    count = len(claims_of(walkthrough()))
    assert out.rstrip().endswith(f"{count} of {count} checks passed.")


def test_command_options(capsys):
    args = ["explain", "--layers", "2", "--bidirectional", "--proj-size", "2", "--input-size", "3",
            "--hidden-size", "4", "--steps", "3", "--batch", "1", "--seed", "7"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lstm = lstmkit.LSTM(3, 4, proj_size=2, num_layers=2, dropout=0.5, bidirectional=True)" in out
    assert "x: (T, B, I) = (3, 1, 3)" in out
    assert "Bidirectional: which part is which" in out and "Projection (LSTMP)" in out
    assert "FAILED" not in out


def test_command_reports_bad_sizes_in_one_line(capsys):
    assert main(["explain", "--proj-size", "3"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit explain: error: proj size must be 0") and err.count("\n") == 1
    assert main(["explain", "--steps", "0"]) == 2  # argparse's own errors are one line too
    err = capsys.readouterr().err
    assert "--steps" in err and "must be at least 1, got 0" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------------------
# --model RUN_DIR: the loader's checks, and the plotting path with a made-up model (tests/test_cli_lm.py plots a
# trained language model through the command)


def made_up_model(bidirectional: bool = False) -> ExplainModel:
    """A randomly initialised LSTM with a whitespace tokenizer and a random embedding per word."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(4, 6, num_layers=2, bidirectional=bidirectional)
    vocab: dict[str, int] = {}
    table = torch.randn(50, 4)

    def embed(tokens):
        return table[[vocab.setdefault(token, len(vocab)) % 50 for token in tokens]]  # (T, I)

    return ExplainModel(lstm, str.split, embed)


def test_explain_text_writes_heatmaps_and_saturation(tmp_path):
    paths = explain_text(made_up_model(bidirectional=True), "the cat sat on the mat", tmp_path / "gates.png",
                         layer=1, direction=1)
    assert paths == [tmp_path / "gates.png", tmp_path / "gates-saturation.png"]
    for path in paths:
        assert path.stat().st_size > 10_000
    assert saturation_path("out/plot") == Path("out/plot-saturation.png")
    with pytest.raises(ExplainError, match="no tokens"):
        explain_text(made_up_model(), "   ", tmp_path / "empty.png")


def test_command_with_model_reports_problems_in_one_line(tmp_path, capsys):
    assert main(["explain", "--model", str(tmp_path), "--text", "a b", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit explain: error: no checkpoint in ") and err.count("\n") == 1
    (tmp_path / "checkpoint").mkdir()
    for name in ("checkpoint/model.safetensors", "checkpoint/state.json"):
        (tmp_path / name).write_text("{}")  # a damaged checkpoint
    assert main(["explain", "--model", str(tmp_path), "--text", "a b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit explain: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert main(["explain", "--text", "a b"]) == 2
    assert "plots need both --model RUN_DIR and --text" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
