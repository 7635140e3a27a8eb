"""``lstmkit explain``: the tiny-LSTM walkthrough, and gate plots of a trained language model over a text.

The walkthrough and the plots live in :mod:`lstmkit.explain`, which sits below ``train`` and cannot load trained
models; this command module reads the run directory through :mod:`lstmkit.lm_api` and hands the plots one layer
of the model with a function that turns text into that layer's input.
"""

from __future__ import annotations

import argparse

import torch

from ..explain.walkthrough import ExplainError, ExplainModel, configure_parser
from ..explain.walkthrough import run as run_walkthrough
from ..lm_api import load_language_model, tokenize_prompt

__all__ = ["configure_parser", "language_model_for_explain", "run"]


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
    return run_walkthrough(args, loader=language_model_for_explain)
