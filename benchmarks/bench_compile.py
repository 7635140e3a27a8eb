"""torch.compile against eager for the language model's and the tagger's training steps.

For each model: one step compiled with inductor (``fullgraph=True``, so a graph break would be an error) is
checked against eager (loss and every gradient; inductor is told to draw random numbers with torch's generator,
``fallback_random``, so the language model's dropout masks are the same; the tagger in eval), then eager and compiled training
steps (forward, loss, backward, clipping, SGD) are timed in the same process, alternating, and the medians and
their ratio printed (compiled / eager: below 1 is faster). The compile time is reported separately.

    python benchmarks/bench_compile.py                    # both models (a few minutes on 2 cores, mostly compiling)
    python benchmarks/bench_compile.py --models lm --steps 5

Sizes: the language model's "small" preset (200/400/2, B = 20, T = 35, 10,000 words, random tokens); the
tagger's default configuration on one batch of 32 random sentences of 5-30 words over a 5,000-word vocabulary.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch._inductor.config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import lstmkit  # noqa: E402
from lstmkit.tagger.data import TaggingBatch  # noqa: E402
from lstmkit.lm import LanguageModel  # noqa: E402
from lstmkit.tagger import Tagger, TaggerConfig  # noqa: E402
from lstmkit.lm.task import make_config  # noqa: E402


def lm_case(seed: int = 0):
    """The small preset's model and one (T = 35, B = 20) window: (model, loss function, its arguments)."""
    torch.manual_seed(seed)
    config = make_config("small")
    model = LanguageModel(10_000, config.model).train()
    T, B = config.data.bptt, config.data.batch_size
    words, targets = torch.randint(0, 10_000, (T, B)), torch.randint(0, 10_000, (T, B))
    hidden = model.init_hidden(B)

    def loss(words, targets, hidden):
        return model.loss(model(words, hidden), targets).loss

    return model, loss, (words, targets, hidden)


def tagger_case(seed: int = 0):
    """The default tagger on one batch of random sentences: (model, loss function, its arguments)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    sentences, words, chars = 32, 5_000, 60
    model = Tagger(TaggerConfig(), num_words=words, num_chars=chars, num_tags=18).train()
    lengths = torch.randint(5, 31, (sentences,), generator=g)
    T = int(lengths.max())
    mask = torch.arange(T)[None, :] < lengths[:, None]
    word_ids = torch.randint(1, words, (sentences, T), generator=g) * mask
    forms = int(mask.sum())  # one spelling row per real word (no sharing: the worst case for the char BiLSTM)
    char_lengths = torch.randint(1, 13, (forms,), generator=g)
    char_ids = torch.randint(1, chars, (forms, 12), generator=g) * (torch.arange(12)[None, :] < char_lengths[:, None])
    word_index = torch.zeros(sentences, T, dtype=torch.long)
    word_index[mask] = torch.arange(forms)
    tags = torch.randint(1, 18, (sentences, T), generator=g).masked_fill(~mask, -100)
    batch = TaggingBatch(word_ids, lengths, char_ids, char_lengths, word_index, tags)

    def loss(batch):
        return model.loss(model(batch), batch.tags)

    return model, loss, (batch,)


CASES = {"lm": lm_case, "tagger": tagger_case}


def train_step(model, loss_fn, args, optimizer):
    loss = loss_fn(*args)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    optimizer.step()


def check(name: str) -> float:
    """Largest difference between compiled and eager (loss and gradients), relative to each tensor's scale.

    The tagger is checked in eval mode: in training its compiled BiLSTMs draw their dropout masks over padded
    (T, B) positions while eager code, which packs, draws them over the packed rows: equally valid, not equal."""
    model, loss_fn, args = CASES[name]()
    if name == "tagger":
        model.eval()
    compiled = torch.compile(loss_fn, fullgraph=True)

    def run(fn):
        torch.manual_seed(1)
        loss = fn(*args)
        return [loss, *torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])]

    worst = 0.0
    for a, e in zip(run(compiled), run(loss_fn)):
        worst = max(worst, ((a - e).abs().max() / e.abs().max().clamp_min(1e-12)).item())
    return worst


def time_steps(name: str, steps: int) -> dict[str, float]:
    results = {}
    sides = {}
    for side in ("eager", "compiled"):
        model, loss_fn, args = CASES[name]()
        fn = torch.compile(loss_fn, fullgraph=True) if side == "compiled" else loss_fn
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        t0 = time.perf_counter()
        train_step(model, fn, args, optimizer)  # compiles on the compiled side
        results[f"{side} first step s"] = time.perf_counter() - t0
        sides[side] = (model, fn, args, optimizer)
    samples = {side: [] for side in sides}
    for _ in range(steps):
        for side, (model, fn, args, optimizer) in sides.items():
            t0 = time.perf_counter()
            train_step(model, fn, args, optimizer)
            samples[side].append(time.perf_counter() - t0)
    for side, values in samples.items():
        results[f"{side} ms"] = statistics.median(values) * 1e3
    results["compiled / eager"] = results["compiled ms"] / results["eager ms"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lm,tagger", help="comma-separated: lm, tagger")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per side (medians reported)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch._inductor.config.fallback_random = True  # the same dropout masks as eager
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
          f"fused kernel: {lstmkit.ops.fused_backend()}")
    for name in args.models.split(","):
        torch._dynamo.reset()
        print(f"{name}: compiled vs eager, max relative difference {check(name):.2e}")
        torch._dynamo.reset()
        for key, value in time_steps(name, args.steps).items():
            print(f"  {key:22s} {value:9.3f}")


if __name__ == "__main__":
    main()
