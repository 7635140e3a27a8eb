"""A two-minute tour of lstmkit.LSTM: ``python -m lstmkit.tour`` (the core of ``make demo``).

It builds an LSTM, loads a torch.nn.LSTM's state_dict into it, shows that every implementation gives torch's
numbers, and takes a training step.
"""

from __future__ import annotations

import torch

import lstmkit


def main() -> int:
    torch.manual_seed(0)
    print("1. A torch.nn.LSTM and an lstmkit.LSTM with the same arguments and the same weights")
    theirs = torch.nn.LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True)
    ours = lstmkit.LSTM(input_size=8, hidden_size=16, num_layers=2, bidirectional=True)
    ours.load_state_dict(theirs.state_dict())  # same names, same shapes: loads as is
    print("   parameters:", ", ".join(name for name, _ in ours.named_parameters()))

    x = torch.randn(12, 4, 8)  # (T, B, I)
    expected, (h_n, c_n) = theirs(x)
    print(f"   input {tuple(x.shape)} -> output {tuple(expected.shape)}, h_n {tuple(h_n.shape)}, c_n {tuple(c_n.shape)}")

    print("2. Every implementation computes torch's numbers")
    for impl in ("native", "fused", "reference"):
        ours.impl = impl
        output, _ = ours(x)
        error = (output - expected).abs().max().item()
        print(f"   impl={impl:<9} largest difference from torch.nn.LSTM: {error:.1e}")
        assert error < 1e-5

    print("3. A training step on the fused path (hand-written backward through time)")
    ours.impl = "fused"
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.1)
    target = torch.randn(12, 4, 32)
    for step in range(3):
        output, _ = ours(x)
        loss = torch.nn.functional.mse_loss(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        print(f"   step {step}: loss {loss.item():.4f}")
    print("   (the test suite checks every gradient against torch.nn.LSTM and torch.autograd.gradcheck)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
