"""Throughput of ``lstmkit classify`` (sentences per second) against a peer built on plain ``torch.nn.LSTM``.

Ours: :func:`lstmkit.classify.classify_texts` on raw lines (tokenize, encode, batches sorted by length, the
classifier under ``torch.inference_mode``, softmax, the best label) with each ``precision``: float32 (the default:
the fast path of :mod:`lstmkit.classify.inference`, a per-word table for the first layer's input projection and no
steps spent on padding), int8 (the same with int8 weights) and auto (bfloat16 autocast through the module where the
CPU has native bfloat16); by default ``--threads`` workers take whole batches with one torch thread each, "/w1" runs
one batch at a time on ``--threads`` torch threads; and the module itself in float32 (``Classifier.forward``, what
``classify`` ran before the fast path). The peers (our own code): the same tokenized, encoded and sorted batches
through ``torch.nn.LSTM`` layers holding the same weights, the same concat pooling and head, in float32 and with
torch's dynamic int8 quantization of those layers (``torch.ao.quantization.quantize_dynamic``). All run in the same
process in alternating blocks; the report gives the median sentences per second of each, the ratio to the float32
peer, and how many predictions equal the module's.

    python benchmarks/bench_classify.py --run runs/sst2 --threads 2          # a trained classifier
    python benchmarks/bench_classify.py --threads 2                          # random weights of the default sizes
    python benchmarks/bench_classify.py --run runs/sst2 --floor              # where float32's time goes, 1 thread

``--floor`` times, on one thread (what each classify worker runs), float32 ``classify_texts`` with one worker, the
fast path's logits alone, and only the matrix products the fast path runs (the same shapes in the same order: the
first layer's recurrent product of the examples still running at each step, the second layer's input product, its
recurrent product), and reports their GFLOP/s: how far a faster loop around those products could go.

The sentences are MR's 10,662 lines (``--data``, else ``$LSTMKIT_DATA/rt_polarity``, else
``../shared/data/rt_polarity``); without them, random sentences of 5-40 words stand in (said in the output).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from lstmkit.classify.api import LoadedClassifier, classify_texts, load_classifier  # noqa: E402
from lstmkit.classify.data import make_batch, read_mr, tokenize  # noqa: E402
from lstmkit.classify.inference import FastClassifier  # noqa: E402
from lstmkit.classify.model import Classifier, concat_pool  # noqa: E402
from lstmkit.classify.task import ClassifierRunConfig, encode_examples  # noqa: E402
from lstmkit.data import EOS, UNK, Vocab, batch_plan  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sentences(data: str | None) -> tuple[list[str], str]:
    root = Path(data or os.environ.get("LSTMKIT_DATA", REPO.parent / "shared" / "data")) / (
        "" if data else "rt_polarity")
    if (root / "rt-polarity.pos").is_file():
        return [" ".join(example.tokens) for example in read_mr(root)], f"MR ({root})"
    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    return [" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(10_000)], "random sentences"


def random_classifier(texts: list[str]) -> LoadedClassifier:
    config = ClassifierRunConfig()
    vocab = Vocab.build((token for text in texts for token in tokenize(text)), specials=(UNK, EOS))
    model = Classifier(len(vocab), 2, config.model).eval()
    return LoadedClassifier(model, vocab, ["negative", "positive"], config, Path("random weights"))


class Peer(nn.Module):
    """The same network on torch.nn.LSTM layers (weights copied), the same pooling and head."""

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.embedding = model.encoder.embedding
        self.layers = nn.ModuleList()
        for layer in model.encoder.layers:
            peer = nn.LSTM(layer.input_size, layer.hidden_size)
            peer.load_state_dict({k: v for k, v in layer.state_dict().items() if k in peer.state_dict()})
            self.layers.append(peer)
        self.head = model.head

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(words)
        for layer in self.layers:
            x, _ = layer(x)
        return self.head(concat_pool(x, lengths))


def peer_classify(peer: Peer, clf: LoadedClassifier, texts: list[str], batch_size: int) -> list[int]:
    ids = encode_examples([tokenize(text) for text in texts], clf.vocab)
    out = [0] * len(ids)
    with torch.inference_mode():
        for indices in batch_plan([len(row) for row in ids], batch_size):
            batch = make_batch([ids[i] for i in indices], None, clf.vocab.unk_id)
            best = torch.softmax(peer(batch.words, batch.lengths), dim=1).argmax(dim=1).tolist()
            for row, index in enumerate(indices):
                out[index] = best[row]
    return out


def module_classify(clf: LoadedClassifier, texts: list[str], batch_size: int) -> list[int]:
    """The module's own forward (``Classifier.forward``) over the same batches: classify before the fast path."""
    ids = encode_examples([tokenize(text) for text in texts], clf.vocab)
    out = [0] * len(ids)
    with torch.inference_mode():
        for indices in batch_plan([len(row) for row in ids], batch_size):
            batch = make_batch([ids[i] for i in indices], None, clf.vocab.unk_id)
            best = torch.softmax(clf.model(batch.words, batch.lengths).logits, dim=1).argmax(dim=1).tolist()
            for row, index in enumerate(indices):
                out[index] = best[row]
    return out


def gemm_floor(clf: LoadedClassifier, texts: list[str], batch_size: int, repeats: int) -> None:
    """Print the one-thread times of float32 classify_texts, the fast path's logits, and its matrix products alone."""
    torch.set_num_threads(1)
    ids = encode_examples([tokenize(text) for text in texts], clf.vocab)
    batches = [make_batch([ids[i] for i in indices], None, clf.vocab.unk_id)
               for indices in batch_plan([len(row) for row in ids], batch_size)]
    fast = FastClassifier(clf.model)
    first, second = fast.layers  # the table layer, then a layer with float32 (W_ih.T, b)
    w0, (w1_input, b1), w1 = first.recurrent, second.input, second.recurrent

    def logits() -> None:
        for batch in batches:
            fast.logits(batch.words, batch.lengths)

    def products() -> None:  # only the fast path's GEMMs, into buffers of its shapes
        for batch in batches:
            steps, size = batch.words.shape
            running = (batch.lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(dim=1).tolist()
            h0, h1 = torch.zeros(steps, size, first.hidden), torch.zeros(steps, size, second.hidden)
            g0, g1 = torch.zeros(size, w0.size(1)), torch.zeros(size, w1.size(1))
            for t in range(1, steps):
                g0[: running[t]].addmm_(h0[t - 1, : running[t]], w0)
            torch.addmm(b1, h0.view(steps * size, -1), w1_input)
            for t in range(1, steps):
                g1[: running[t]].addmm_(h1[t - 1, : running[t]], w1)

    sides = {"classify_texts float32, 1 worker": lambda: classify_texts(clf, texts, batch_size, "float32", 1),
             "fast path logits only": logits, "its matrix products only": products}
    times: dict[str, list[float]] = {name: [] for name in sides}
    with torch.inference_mode():
        for side in sides.values():
            side()  # warm-up
        for _ in range(repeats):
            for name, side in sides.items():
                started = time.perf_counter()
                side()
                times[name].append(time.perf_counter() - started)
    tokens = sum(len(row) for row in ids)
    flop = 2 * tokens * (w0.numel() + w1_input.numel() + w1.numel())
    print(f"float32 floor, 1 thread: {len(texts)} sentences ({tokens} tokens with <eos>), model {clf.path}, batch "
          f"{batch_size}, torch {torch.__version__}, {cpu_name()}; the LSTM's matrix products: {flop / 1e9:.1f} GFLOP")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in medians.items():
        print(f"  {name:<34} {seconds:7.3f} s  {len(texts) / seconds:>8,.0f} sentences/s  "
              f"{flop / seconds / 1e9:6.1f} GFLOP/s of the products (median of {repeats})")
    share = medians["its matrix products only"] / medians["fast path logits only"]
    print(f"  the matrix products are {100 * share:.0f} % of the fast path's time")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a train-classifier run directory (default: random weights, default sizes)")
    parser.add_argument("--data", help="the MR folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per side")
    parser.add_argument("--limit", type=int, help="classify only the first N sentences")
    parser.add_argument("--floor", action="store_true", help="instead: float32's one-thread time against the time "
                        "of its matrix products alone")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts, source = sentences(args.data)
    if args.limit:
        texts = texts[: args.limit]
    clf = load_classifier(args.run) if args.run else random_classifier(texts)
    if args.floor:
        gemm_floor(clf, texts, args.batch_size, args.repeats)
        return 0
    peer = Peer(clf.model).eval()
    with warnings.catch_warnings():  # torch marks its eager quantization deprecated (torchao replaces it)
        warnings.simplefilter("ignore")
        peer_int8 = torch.ao.quantization.quantize_dynamic(Peer(clf.model).eval(), {nn.LSTM}, dtype=torch.qint8)

    def ours(precision: str, workers: int | None = None):
        return lambda: [clf.labels.index(p.label)
                        for p in classify_texts(clf, texts, args.batch_size, precision, workers)]

    sides = {
        "lstmkit float32": ours("float32"),
        "lstmkit int8": ours("int8"),
        "lstmkit float32/w1": ours("float32", 1),
        "lstmkit int8/w1": ours("int8", 1),
        "lstmkit auto": ours("auto"),
        "module float32": lambda: module_classify(clf, texts, args.batch_size),
        "peer float32": lambda: peer_classify(peer, clf, texts, args.batch_size),
        "peer int8": lambda: peer_classify(peer_int8, clf, texts, args.batch_size),
    }
    labels = {name: side() for name, side in sides.items()}  # warm-up, and the predictions
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.repeats):
        for name, side in sides.items():
            started = time.perf_counter()
            side()
            times[name].append(time.perf_counter() - started)
    tokens = sum(len(tokenize(text)) + 1 for text in texts)
    print(f"classify throughput: {len(texts)} sentences of {source} ({tokens / len(texts):.1f} tokens each with "
          f"<eos>), model {clf.path} ({clf.model.num_parameters():,} parameters), batch {args.batch_size}, "
          f"{args.threads} threads, torch {torch.__version__}, {cpu_name()}")
    rates = {name: len(texts) / statistics.median(values) for name, values in times.items()}
    reference = labels["module float32"]
    for name, rate in rates.items():
        ratio = rate / rates["peer float32"]
        agree = sum(a == b for a, b in zip(labels[name], reference))
        print(f"  {name:<18} {rate:>10,.0f} sentences/s (median of {args.repeats}), {ratio:.2f}x the float32 peer; "
              f"predictions equal to the module's on {agree}/{len(texts)}")
    print(f"  (lstmkit: {args.threads} workers taking whole batches, one torch thread each, the default; /w1: one "
          f"batch at a time on {args.threads} torch threads; auto: bfloat16 autocast where the CPU has native "
          "bfloat16 arithmetic, else float32, through the module)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
