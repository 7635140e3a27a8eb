"""Cases shared by the export tests: every option of lstmkit.LSTM, inputs, tiny tagger sentences."""

from __future__ import annotations

import torch

from tiny_treebank import random_sentences

# every option of lstmkit.LSTM; the training-only ones (dropouts, weight dropout) must vanish in eval
OPTIONS = {
    "plain": {},
    "stacked_bidirectional": dict(num_layers=2, bidirectional=True),
    "no_bias": dict(bias=False, bidirectional=True),
    "batch_first": dict(batch_first=True, bidirectional=True),
    "proj_size": dict(proj_size=3, num_layers=2, bidirectional=True),
    "layer_norm": dict(layer_norm=True, num_layers=2, bidirectional=True),
    "peephole": dict(peephole=True, bidirectional=True),
    "zoneout": dict(zoneout=(0.2, 0.35), bidirectional=True),
    "cell_clip": dict(cell_clip=0.3, bidirectional=True),
    "training_only": dict(num_layers=2, dropout=0.3, weight_dropout=0.4, recurrent_dropout=0.25, forget_bias=1.0),
    "everything": dict(num_layers=2, bidirectional=True, proj_size=4, layer_norm=True, peephole=True, zoneout=0.1,
                       cell_clip=1.0, recurrent_dropout=0.2, weight_dropout=0.3, dropout=0.1, batch_first=True),
}
PLAIN = {"plain", "stacked_bidirectional", "no_bias", "batch_first", "peephole", "training_only"}



def lstm_inputs(module, T: int, B: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    directions = 2 if module.bidirectional else 1
    proj = module.proj_size or module.hidden_size
    x = torch.randn((B, T, module.input_size) if module.batch_first else (T, B, module.input_size), generator=g)
    h0 = torch.randn(module.num_layers * directions, B, proj, generator=g)
    c0 = torch.randn(module.num_layers * directions, B, module.hidden_size, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[B // 2] = T
    return x, (h0, c0), lengths


tagger_sentences = random_sentences


