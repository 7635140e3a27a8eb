"""Training throughput of lstmkit's LanguageModel against a peer written the way the AWD-LSTM reference code is.

The peer (:class:`PeerModel`, our own code in the reference's style): plain ``torch.nn.LSTM`` layers whose
``weight_hh_l0`` is replaced by a dropped copy before every forward call, embedding dropout by scaling the whole
embedding matrix with a per-word mask, locked dropout by an expanded mask, and the loss as separate decoder,
log_softmax and gather ops. Ours: :class:`lstmkit.lm.task.LanguageModelTask` taking real training steps
(``lstmkit.LSTM`` with ``weight_dropout`` on torch's kernel, the fused decoder + cross entropy). Both sides get the
same windows of the same corpus, the same sizes, regularisation, clipping, weight decay and lr scaling, and are
timed in the same process in alternating blocks; the report gives median training tokens per second and the ratio.

    python benchmarks/bench_lm.py                      # small and awd sizes on PTB (a few minutes on 2 cores)
    python benchmarks/bench_lm.py --quick              # fewer, shorter blocks
    python benchmarks/bench_lm.py --data DIR --sizes small --threads 2

The corpus is PTB from ``--data``, else ``$LSTMKIT_DATA/ptb``, else ``../shared/data/ptb``; without it, random
tokens over a 10,000-word vocabulary stand in (said in the output).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lstmkit.data import Corpus, Vocab, batchify, bptt_windows, load_corpus  # noqa: E402
from lstmkit.train import StepInfo  # noqa: E402
from lstmkit.lm.task import LanguageModelTask, make_config  # noqa: E402
from lstmkit.runtime import keep_freed_memory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ the peer, reference style


def peer_embedding_dropout(embedding: nn.Embedding, words: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    weight = embedding.weight
    if training and p:
        mask = weight.new_empty((weight.size(0), 1)).bernoulli_(1 - p).expand_as(weight) / (1 - p)
        weight = mask * weight
    return F.embedding(words, weight)


def peer_locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or not p:
        return x
    mask = x.new_empty(1, x.size(1), x.size(2)).bernoulli_(1 - p) / (1 - p)
    return mask.expand_as(x) * x


class PeerWeightDrop(nn.Module):
    """Wraps a one-layer ``torch.nn.LSTM``: its recurrent weight lives here as ``weight_hh_raw`` and a dropped copy
    is assigned to the LSTM before every forward call."""

    def __init__(self, lstm: nn.LSTM, p: float) -> None:
        super().__init__()
        self.lstm, self.p = lstm, p
        raw = lstm.weight_hh_l0
        del lstm._parameters["weight_hh_l0"]
        self.weight_hh_raw = nn.Parameter(raw.detach().clone())

    def forward(self, x, state):
        setattr(self.lstm, "weight_hh_l0", F.dropout(self.weight_hh_raw, self.p, self.training))
        return self.lstm(x, state)


class PeerModel(nn.Module):
    def __init__(self, vocab_size: int, emb: int, hidden: int, layers: int, dropouts: dict) -> None:
        super().__init__()
        self.d = dropouts
        self.encoder = nn.Embedding(vocab_size, emb)
        sizes = [(emb if i == 0 else hidden, emb if i == layers - 1 else hidden) for i in range(layers)]
        self.rnns = nn.ModuleList(PeerWeightDrop(nn.LSTM(a, b, 1), dropouts["weight"]) for a, b in sizes)
        self.decoder = nn.Linear(emb, vocab_size)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch: int):
        return [(torch.zeros(1, batch, r.lstm.hidden_size), torch.zeros(1, batch, r.lstm.hidden_size)) for r in self.rnns]

    def forward(self, words, hidden):
        d = self.d
        x = peer_embedding_dropout(self.encoder, words, d["embedding"], self.training)
        x = peer_locked_dropout(x, d["input"], self.training)
        raw_outputs, outputs, new_hidden = [], [], []
        for i, rnn in enumerate(self.rnns):
            x, h = rnn(x, hidden[i])
            new_hidden.append(h)
            raw_outputs.append(x)
            x = peer_locked_dropout(x, d["output"] if i == len(self.rnns) - 1 else d["hidden"], self.training)
            outputs.append(x)
        return x, new_hidden, raw_outputs, outputs


def peer_criterion(weight, bias, hiddens, targets):
    hiddens = hiddens.view(-1, hiddens.size(2))
    log_probs = F.log_softmax(F.linear(hiddens, weight, bias), dim=-1)
    return -torch.gather(log_probs, 1, targets.view(-1, 1)).sum() / targets.numel()


class PeerTrainer:
    """One reference-style training step per call."""

    def __init__(self, vocab_size: int, config) -> None:
        m = config.model
        dropouts = {"embedding": m.embedding_dropout, "input": m.input_dropout, "hidden": m.hidden_dropout,
                    "output": m.output_dropout, "weight": m.weight_dropout}
        self.model = PeerModel(vocab_size, m.embedding_size, m.hidden_size, m.num_layers, dropouts)
        self.params = list(self.model.parameters())
        self.optimizer = torch.optim.SGD(self.params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
        self.config = config
        self.hidden = self.model.init_hidden(config.data.batch_size)

    def step(self, window) -> None:
        c = self.config
        base = self.optimizer.param_groups[0]["lr"]
        self.optimizer.param_groups[0]["lr"] = base * window.seq_len / c.data.bptt
        self.model.train()
        self.hidden = [(h.detach(), s.detach()) for h, s in self.hidden]
        self.optimizer.zero_grad()
        output, self.hidden, raw_outputs, outputs = self.model(window.inputs, self.hidden)
        raw_loss = peer_criterion(self.model.decoder.weight, self.model.decoder.bias, output, window.targets)
        loss = raw_loss + c.model.ar_alpha * outputs[-1].pow(2).mean()
        loss = loss + c.model.tar_beta * (raw_outputs[-1][1:] - raw_outputs[-1][:-1]).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, c.optim.clip)
        self.optimizer.step()
        self.optimizer.param_groups[0]["lr"] = base


# ------------------------------------------------------------------------------------------------------ harness


def find_corpus(data: str | None) -> tuple[Corpus, str]:
    candidates = [Path(data)] if data else []
    if os.environ.get("LSTMKIT_DATA"):
        candidates.append(Path(os.environ["LSTMKIT_DATA"]) / "ptb")
    candidates.append(REPO.parent / "shared" / "data" / "ptb")
    for path in candidates:
        if path.is_dir():
            return load_corpus(path), str(path)
    vocab = Vocab(["<unk>", "<eos>"] + [f"w{i}" for i in range(9998)])
    ids = torch.randint(10000, (400_000,), generator=torch.Generator().manual_seed(0))
    corpus = Corpus(vocab, ids, ids[:20000], ids[:20000], {"train": 0, "valid": 0, "test": 0}, {}, "word")
    return corpus, "random tokens (PTB not found)"


def measure(size: str, corpus: Corpus, args) -> dict:
    """Median tokens/s of the peer and of ours in each precision, sampled in alternating blocks."""
    overrides = [f"--threads={args.threads}"] + ([f"--data.batch_size={args.batch_size}"] if args.batch_size else [])
    config = make_config(size, overrides)
    data = batchify(corpus.train, config.data.batch_size)
    windows = list(bptt_windows(data, config.data.bptt, generator=torch.Generator().manual_seed(1)))
    sides: dict[str, object] = {}
    for precision in args.precisions:
        torch.manual_seed(0)
        sides[f"ours {precision}"] = LanguageModelTask(make_config(size, overrides + [f"--precision={precision}"]),
                                                       corpus)
    torch.manual_seed(0)
    sides["peer"] = PeerTrainer(len(corpus.vocab), config)
    position = dict.fromkeys(sides, 0)

    def run(side: str, steps: int) -> tuple[int, float]:
        tokens = 0
        trainer = sides[side]
        started = time.perf_counter()
        for _ in range(steps):
            window = windows[position[side] % len(windows)]
            position[side] += 1
            if side == "peer":
                trainer.step(window)
            else:
                trainer.train_step(window, StepInfo(0, 0, 0.0, None))
            tokens += window.targets.numel()
        return tokens, time.perf_counter() - started

    blocks, steps = (args.blocks, args.steps) if size == "small" or args.quick else (args.blocks, max(1, args.steps // 3))
    for side in sides:
        run(side, args.warmup)
    rates: dict[str, list[float]] = {side: [] for side in sides}
    names = list(sides)
    for block in range(blocks):
        order = names if block % 2 == 0 else names[::-1]
        for side in order:
            tokens, seconds = run(side, steps)
            rates[side].append(tokens / seconds)
    medians = {side: statistics.median(values) for side, values in rates.items()}
    return {"size": size, "medians": medians, "rates": rates, "batch": config.data.batch_size,
            "bptt": config.data.bptt, "blocks": blocks, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="PTB directory (default: $LSTMKIT_DATA/ptb or ../shared/data/ptb)")
    parser.add_argument("--sizes", default="small,awd", help="comma-separated presets to measure")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--batch-size", type=int, help="override the presets' batch size")
    parser.add_argument("--blocks", type=int, default=8, help="timed blocks per side")
    parser.add_argument("--steps", type=int, default=9, help="training steps per block (a third for awd)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    parser.add_argument("--precisions", default="float32,bfloat16",
                        help="our training precisions to measure (comma-separated: float32, bfloat16, auto)")
    parser.add_argument("--quick", action="store_true", help="3 blocks of 2 steps")
    parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                        help="default: glibc as every process starts; keep: lstmkit.runtime.keep_freed_memory() first "
                        "(what `lstmkit train-lm` does), for both sides alike")
    args = parser.parse_args(argv)
    if args.malloc == "keep" and not keep_freed_memory():
        print("--malloc keep: not glibc, nothing changed", file=sys.stderr)
    args.precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if args.quick:
        args.blocks, args.steps, args.warmup = 3, 2, 1
    torch.set_num_threads(args.threads)
    corpus, source = find_corpus(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"corpus: {source}; malloc {args.malloc}; {args.blocks} alternating blocks of {args.steps} steps")
    for size in args.sizes.split(","):
        r = measure(size.strip(), corpus, args)
        peer = r["medians"]["peer"]
        print(f"{r['size']} (B={r['batch']}, bptt={r['bptt']}, {r['blocks']} blocks of {r['steps']} steps):", flush=True)
        for side, median in r["medians"].items():
            per_block = ", ".join(f"{a / b:.2f}" for a, b in zip(r["rates"][side], r["rates"]["peer"]))
            ratio = "" if side == "peer" else f"   {median / peer:.2f}x the peer (per block: {per_block})"
            print(f"  {side:15s} {median:8.0f} tok/s{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
