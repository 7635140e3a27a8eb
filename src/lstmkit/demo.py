"""``make demo`` / ``python -m lstmkit.demo``: train a small AWD-LSTM language model for about two minutes, then use it.

It needs no download: the corpus is the Python reference manual that ships with CPython (``pydoc_data``). Steps:

1. train the small preset (200/400/2, AWD-LSTM regularisation) for ``--seconds`` of training time, with a
   progress bar, evaluating every epoch;
2. print the validation and test perplexity of the best checkpoint;
3. generate a few sentences;
4. list the most likely next words after a prompt.

The same as ``lstmkit train-lm --preset small --max-seconds 120`` followed by ``lstmkit eval-lm``,
``lstmkit generate`` and ``lstmkit next-word`` on the run directory.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

PROMPTS = ("the return value of", "if the object is")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lstmkit.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="training time (default: 120)")
    parser.add_argument("--run-dir", help="where the run goes (default: runs/demo-TIME)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="torch CPU threads (default: 0, torch's choice, as in the lstmkit commands)")
    args = parser.parse_args(argv)

    from .runtime import prepare_openmp_environment, set_thread_count

    prepare_openmp_environment()  # before torch loads: idle OpenMP threads spin only briefly
    threads = set_thread_count(args.threads)
    from .lm.api import evaluate_lm, generate, load_language_model, next_words
    from .lm.task import make_config, train_language_model

    run_dir = Path(args.run_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    overrides = [f"--train.max_seconds={args.seconds}", "--optim.average_from=0.5"]
    if args.no_progress:
        overrides.append("--train.progress=false")
    config = make_config("small", overrides)
    print(f"== 1. Training the small preset on the built-in corpus for {args.seconds:.0f} s of training time "
          f"({threads} thread{'s' if threads > 1 else ''})")
    result = train_language_model(config, run_dir, echo=lambda line: print("   " + line))
    if result.interrupted:
        print(f"interrupted; resume with: lstmkit train-lm --resume {run_dir}")
        return 130

    lm = load_language_model(run_dir)
    valid_ppl = math.exp(result.state.best_score)  # the best checkpoint's validation loss
    test = evaluate_lm(lm, "test", batch_size=10)
    print(f"\n== 2. Best checkpoint: validation perplexity {valid_ppl:.1f}, test perplexity {test.ppl:.1f} "
          f"({result.state.step} steps, {result.state.epoch} epochs, "
          f"{result.state.tokens / max(result.state.train_seconds, 1e-9):.0f} tokens/s)")

    print("\n== 3. Generated text (temperature 0.8, top 40; / marks a line end)")
    for seed, prompt in enumerate(("", *PROMPTS), start=1):
        text = generate(lm, prompt, words=25, temperature=0.8, top_k=40, seed=seed)
        shown = " ".join(f"{prompt} {text}".replace("\n", " / ").split())
        print(f"   - {shown}")

    print("\n== 4. Most likely next words")
    for prompt in PROMPTS:
        candidates = ", ".join(f"{word} ({probability:.2f})" for word, probability in next_words(lm, prompt, k=5))
        print(f"   {prompt} ... {candidates}")
    print(f"\nRun directory: {run_dir}  (lstmkit plot {run_dir} draws the curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
