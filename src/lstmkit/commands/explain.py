"""``lstmkit explain``: the tiny-LSTM walkthrough, and gate plots of a trained language model over a text.

The walkthrough and the plots live in :mod:`lstmkit.explain`, which sits below ``train`` and cannot load trained
models; this command module parses the arguments, reads the run directory through :mod:`lstmkit.lm.api` and hands
the plots one layer of the model with a function that turns text into that layer's input.
"""

from __future__ import annotations

import argparse

import torch

from ..explain.walkthrough import ExplainError, ExplainModel, explain_text, render, walkthrough
from ..lm.api import load_language_model, tokenize_prompt

__all__ = ["configure_parser", "language_model_for_explain", "run"]


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Walk through a tiny LSTM step by step (default), or plot a trained model's gates over a "
                          "text (--model RUN_DIR --text ... --out gates.png).")
    tiny = parser.add_argument_group("walkthrough")
    tiny.add_argument("--input-size", type=_positive, default=4, help="input features I (default 4)")
    tiny.add_argument("--hidden-size", type=_positive, default=3, help="hidden units H (default 3)")
    tiny.add_argument("--steps", type=_positive, default=5, help="time steps T (default 5)")
    tiny.add_argument("--batch", type=_positive, default=2, help="sequences in the batch B (default 2)")
    tiny.add_argument("--layers", type=_positive, default=1, help="stacked layers L (default 1)")
    tiny.add_argument("--bidirectional", action="store_true", help="add a backward direction")
    tiny.add_argument("--proj-size", type=int, default=0, help="project h to this size, below hidden size (LSTMP)")
    tiny.add_argument("--dropout", type=float, default=0.5, help="dropout between layers, with --layers > 1 (default 0.5)")
    tiny.add_argument("--seed", type=int, default=0, help="random seed for the weights and input (default 0)")
    plots = parser.add_argument_group("plots of a trained model")
    plots.add_argument("--model", metavar="RUN_DIR", help="a trained language model's run directory")
    plots.add_argument("--text", help="the text whose words the plots run over")
    plots.add_argument("--out", default="gates.png", help="heatmap PNG (default gates.png); the saturation "
                       "histogram goes beside it as NAME-saturation.png")
    plots.add_argument("--layer", type=int, default=0, help="which layer's heatmaps (default 0)")
    plots.add_argument("--direction", type=int, default=0, choices=(0, 1), help="0 forward, 1 backward")


def language_model_for_explain(run_dir: str, layer: int = 0) -> tuple[ExplainModel, int]:
    """Layer ``layer`` of a trained language model, with its tokenizer and the input that layer sees.

    The language model stacks single-layer LSTMs of different sizes, so the traced module is that one layer (index
    0 within it); its input is the embedding of the words run through the layers below, in eval mode."""
    lm = load_language_model(run_dir)
    layers = lm.model.layers
    if not 0 <= layer < len(layers):
        raise ExplainError(f"--layer {layer}: the language model has {len(layers)} layers (0 to {len(layers) - 1})")

    def embed(tokens: list[str]) -> torch.Tensor:
        ids = torch.tensor([lm.vocab.stoi.get(token, lm.vocab.unk_id) for token in tokens]).unsqueeze(1)  # (T, 1)
        with torch.no_grad():
            x = lm.model.embedding(ids)  # (T, 1, E)
            for below in layers[:layer]:
                x, _ = below(x)
        return x[:, 0]  # (T, I)

    return ExplainModel(layers[layer], lambda text: tokenize_prompt(text, lm.tokenizer), embed), 0


def run(args: argparse.Namespace) -> int:
    """Plots with --model and --text; otherwise the walkthrough, exiting with 1 if any of its checks failed."""
    if args.model is not None or args.text is not None:
        if args.model is None or args.text is None:
            raise ExplainError("plots need both --model RUN_DIR and --text")
        model, layer = language_model_for_explain(args.model, args.layer)
        for path in explain_text(model, args.text, args.out, layer=layer, direction=args.direction):
            print(f"wrote {path}")
        return 0
    sections = walkthrough(args.input_size, args.hidden_size, args.steps, args.batch, args.layers,
                           args.bidirectional, args.proj_size, args.dropout, args.seed)
    print(render(sections))
    return 0 if all(c.passed for section in sections for c in section.claims) else 1
