"""Inference speed of the exported models in onnxruntime against eager lstmkit, in one process.

    python benchmarks/bench_export.py [--threads 2] [--repeat 7] [--quick]

Every case builds one model (random weights: speed does not depend on them), exports it with lstmkit.export, and
times the same inputs three ways (blocks of calls, see :func:`median_ms`), medians:

- ``eager``: the module in eval mode under ``torch.inference_mode`` (impl="auto": torch's kernel for plain
  layers, the fused operator for variants and packed input);
- ``ort``: the ONNX model in onnxruntime (CPU provider, ``--threads`` intra-op threads, all graph optimisations);
- ``pt2``: the torch.export program's module (the same operator as eager, without the Python around it).

Printed: milliseconds per call and the ratio ort / eager and pt2 / eager (below 1: faster than eager).
Cases: lstmkit.LSTM plain (ONNX LSTM operator) and with layer norm (ONNX Scan) at T=35, B in {1, 16, 64},
H in {128, 512}; the language model's small preset (V=10,000, 200/400/2) on a (35, 20) window; the tagger's
default configuration on 32 sentences of 5-40 words (packed in eager, lengths in the exports).
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import time

import onnxruntime as ort
import torch

import lstmkit
import lstmkit.runtime
from lstmkit.data import Sentence
from lstmkit.tagger.data import TaggingVocabs, encode_sentences, make_batch
from lstmkit.export import (
    export_language_model,
    export_lstm,
    export_tagger,
    language_model_model,
    lstm_model,
    tagger_model,
)
from lstmkit.lm import LanguageModel, LanguageModelConfig
from lstmkit.tagger import Tagger, TaggerConfig


def median_ms(functions, repeat: int) -> list[float]:
    """Milliseconds per call of each function, median of ``repeat`` calls: each function timed in a block of its
    own (a warm-up call, then half the calls), the blocks run twice, in order and in reverse order.

    Not call by call in turn: the thread pools of torch and onnxruntime spin for a while after their work, and a
    peer called just after the other one ran measured up to 10x slower (35 ms instead of 4 at T=35 B=64 H=128)."""
    times = [[] for _ in functions]
    for order in (range(len(functions)), reversed(range(len(functions)))):
        for index in order:
            functions[index]()
            for _ in range((repeat + 1) // 2):
                started = time.perf_counter()
                functions[index]()
                times[index].append(time.perf_counter() - started)
    return [1000 * statistics.median(samples) for samples in times]


def no_grad(function):
    def call():
        with torch.inference_mode():
            return function()
    return call


def session(model, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep, as torch's do
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def report(name: str, eager: float, onnx: float, program: float) -> None:
    print(f"| {name} | {eager:.2f} | {onnx:.2f} ({onnx / eager:.2f}x) | {program:.2f} ({program / eager:.2f}x) |",
          flush=True)


def lstm_cases(threads: int, repeat: int, quick: bool) -> None:
    for options, label in (({}, "plain"), ({"layer_norm": True}, "layer_norm")):
        for hidden in (128,) if quick else (128, 512):
            torch.manual_seed(0)
            module = lstmkit.LSTM(hidden, hidden, **options).eval()
            run = session(lstm_model(module), threads)
            program = export_lstm(module).module()
            for batch in (1, 16) if quick else (1, 16, 64):
                x = torch.randn(35, batch, hidden)
                feeds = {"input": x.numpy()}
                zeros = (torch.zeros(1, batch, hidden),) * 2
                eager, onnx, exported = median_ms(
                    [no_grad(lambda: module(x)), lambda: run.run(None, feeds), no_grad(lambda: program(x, zeros))],
                    repeat,
                )
                report(f"LSTM {label}, T=35 B={batch} H={hidden}", eager, onnx, exported)


def language_model_case(threads: int, repeat: int) -> None:
    torch.manual_seed(0)
    config = LanguageModelConfig(embedding_size=200, hidden_size=400, num_layers=2)
    lm = LanguageModel(10_000, config).eval()
    run = session(language_model_model(lm), threads)
    program = export_language_model(lm).module()
    words = torch.randint(10_000, (35, 20))
    hidden = lm.init_hidden(20)
    states = [t for pair in hidden for t in pair]
    feeds = {"words": words.numpy()}
    for k, (h, c) in enumerate(hidden):
        feeds[f"h0_{k}"], feeds[f"c0_{k}"] = h.numpy(), c.numpy()
    eager, onnx, exported = median_ms(
        [no_grad(lambda: lm.logits(lm(words, hidden).output)), lambda: run.run(None, feeds),
         no_grad(lambda: program(words, *states))],
        repeat,
    )
    report("language model small preset, V=10,000, T=35 B=20 (logits)", eager, onnx, exported)


def tagger_case(threads: int, repeat: int) -> None:
    rng = random.Random(0)
    lexicon = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 12))) for _ in range(5000)]
    tagset = ["NOUN", "VERB", "ADJ", "DET", "ADP", "PRON", "ADV", "PUNCT", "PROPN", "AUX", "CCONJ", "NUM"]

    def sentence(length: int) -> Sentence:
        s = Sentence.from_tokens([rng.choice(lexicon) for _ in range(length)])
        s.upos = [rng.choice(tagset) for _ in range(length)]
        return s

    vocabs = TaggingVocabs.build([sentence(20) for _ in range(500)])
    torch.manual_seed(0)
    tagger = Tagger.from_vocabs(TaggerConfig(), vocabs).eval()
    run = session(tagger_model(tagger), threads)
    program = export_tagger(tagger).module()
    batch = make_batch(encode_sentences([sentence(rng.randint(5, 40)) for _ in range(32)], vocabs), vocabs)
    names = ("word_ids", "lengths", "char_ids", "char_lengths", "word_index")
    inputs = [getattr(batch, name) for name in names]
    feeds = {name: t.numpy() for name, t in zip(names, inputs)}
    eager, onnx, exported = median_ms(
        [no_grad(lambda: Tagger.predict(tagger(batch))), lambda: run.run(None, feeds),
         no_grad(lambda: program(*inputs))],
        repeat,
    )
    report(f"tagger default config, 32 sentences of 5-40 words ({int(batch.lengths.sum())} words, tags)",
           eager, onnx, exported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="fewer LSTM cells")
    args = parser.parse_args()
    kept = lstmkit.runtime.keep_freed_memory()  # as the lstmkit commands do: no page faults from glibc's trimming
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, fused backend "
          f"{lstmkit.ops.fused_backend() if hasattr(lstmkit.ops, 'fused_backend') else 'python'}, keep_freed_memory {kept}")
    print("| case | eager ms | onnxruntime ms (/ eager) | torch.export program ms (/ eager) |")
    print("|---|---|---|---|")
    lstm_cases(args.threads, args.repeat, args.quick)
    language_model_case(args.threads, args.repeat)
    tagger_case(args.threads, args.repeat)


if __name__ == "__main__":
    main()
