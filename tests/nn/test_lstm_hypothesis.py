"""Random shapes and options, drawn by hypothesis, against torch.nn.LSTM."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmkit
from helpers import compare_modules, make_input


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    impl=st.sampled_from(["auto", "native", "fused", "reference"]),
    T=st.integers(1, 7),
    B=st.integers(1, 5),
    I=st.integers(1, 6),
    H=st.integers(2, 7),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    use_proj=st.booleans(),
    bias=st.booleans(),
    batch_first=st.booleans(),
    kind=st.sampled_from(["batched", "unbatched", "packed", "unsorted"]),
    give_hx=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_configurations_match_torch(impl, T, B, I, H, layers, bidirectional, use_proj, bias, batch_first, kind, give_hx, seed):
    proj = H - 1 if use_proj else 0
    torch.manual_seed(seed)
    options = dict(num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional, proj_size=proj)
    theirs = torch.nn.LSTM(I, H, **options)
    ours = lstmkit.LSTM(I, H, impl=impl, **options)
    ours.load_state_dict(theirs.state_dict())
    x, lengths = make_input(kind, T, B, I, batch_first, seed=seed)
    hx = None
    if give_hx:
        directions = 2 if bidirectional else 1
        batch = () if kind == "unbatched" else (B,)
        hx = (torch.randn(layers * directions, *batch, proj or H), torch.randn(layers * directions, *batch, H))
    compare_modules(theirs, ours, x, lengths, hx, batch_first=batch_first, packed_sorted=kind == "packed")
