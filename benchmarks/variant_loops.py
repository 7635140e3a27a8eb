"""The peer for the variants benchmark: each LSTM variant written the way users write it today, as a Python loop
over a hand-made cell (the style of tutorials and forum answers, and of pytorch's benchmarks/fastrnns
custom_lstms.py), with autograd doing the backward. Our own code; it only has to be a fair, ordinary version.

Letters: T time steps, B batch, I input, H hidden.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class UserCell(nn.Module):
    """One step of an LSTM with one variant switched on."""

    def __init__(self, input_size: int, hidden_size: int, option: str, p: float = 0.25):
        super().__init__()
        H = hidden_size
        self.option, self.p = option, p
        self.on = options_of(option)
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(4 * H))
        self.bias_hh = nn.Parameter(torch.empty(4 * H))
        if "peephole" in self.on:
            self.weight_ci = nn.Parameter(torch.empty(H))
            self.weight_cf = nn.Parameter(torch.empty(H))
            self.weight_co = nn.Parameter(torch.empty(H))
        bound = 1 / math.sqrt(H)
        for w in self.parameters():
            nn.init.uniform_(w, -bound, bound)
        if "layer_norm" in self.on:
            self.ln_ih, self.ln_hh, self.ln_c = nn.LayerNorm(4 * H), nn.LayerNorm(4 * H), nn.LayerNorm(H)

    def forward(self, x, state, weight_hh, mask=None):
        h, c = state
        if "recurrent_dropout" in self.on:
            h = h * mask
        if "layer_norm" in self.on:
            gates = self.ln_ih(x @ self.weight_ih.t()) + self.ln_hh(h @ weight_hh.t()) + self.bias_ih + self.bias_hh
        else:
            gates = x @ self.weight_ih.t() + self.bias_ih + h @ weight_hh.t() + self.bias_hh
        i, f, g, o = gates.chunk(4, 1)
        if "peephole" in self.on:
            i = i + self.weight_ci * c
            f = f + self.weight_cf * c
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if "cell_clip" in self.on:
            c_new = c_new.clamp(-3.0, 3.0)
        if "peephole" in self.on:
            o = o + self.weight_co * c_new
        h_new = torch.sigmoid(o) * torch.tanh(self.ln_c(c_new) if "layer_norm" in self.on else c_new)
        if "zoneout" in self.on:
            keep_h = torch.bernoulli(torch.full_like(h_new, self.p))
            keep_c = torch.bernoulli(torch.full_like(c_new, self.p))
            h_new = keep_h * state[0] + (1 - keep_h) * h_new
            c_new = keep_c * c + (1 - keep_c) * c_new
        return h_new, c_new


class UserLoopLSTM(nn.Module):
    """Stacked UserCells looped over time in Python; weight dropout drops R once per forward call."""

    def __init__(self, input_size: int, hidden_size: int, layers: int, option: str, p: float = 0.25):
        super().__init__()
        self.cells = nn.ModuleList(UserCell(input_size if k == 0 else hidden_size, hidden_size, option, p) for k in range(layers))
        self.option, self.p = option, p

    def forward(self, x):  # (T, B, I)
        for cell in self.cells:
            B, H = x.shape[1], cell.weight_hh.shape[1]
            weight_hh = F.dropout(cell.weight_hh, self.p, self.training) if self.option == "weight_dropout" else cell.weight_hh
            mask = None
            if "recurrent_dropout" in options_of(self.option):
                mask = torch.bernoulli(x.new_full((B, H), 1 - self.p)) / (1 - self.p)
            state = (x.new_zeros(B, H), x.new_zeros(B, H))
            outputs = []
            for step in x:
                state = cell(step, state, weight_hh, mask)
                outputs.append(state[0])
            x = torch.stack(outputs)  # (T, B, H)
        return x, None


# lstmkit.LSTM keyword arguments for each option, matching the loop's settings
LSTMKIT_OPTIONS = {
    "weight_dropout": dict(weight_dropout=0.25),
    "recurrent_dropout": dict(recurrent_dropout=0.25),
    "zoneout": dict(zoneout=0.25),
    "layer_norm": dict(layer_norm=True),
    "peephole": dict(peephole=True),
    "cell_clip": dict(cell_clip=3.0),
    # every option the fused operator computes, at once (weight dropout keeps torch's kernel, so it is left out)
    "all": dict(layer_norm=True, peephole=True, zoneout=0.25, recurrent_dropout=0.25, cell_clip=3.0),
}

COMBINED = ("recurrent_dropout", "zoneout", "layer_norm", "peephole", "cell_clip")  # what "all" switches on


def options_of(option: str) -> set[str]:
    """The single options an option name switches on: itself, or the five of "all"."""
    return set(COMBINED) if option == "all" else {option}
