"""One rank of the DDP tests (tests/train/test_distributed.py starts two of these with torchrun's variables set).

    python ddp_worker.py WORK_DIR

Every rank runs the same scenarios in one process group, so the two processes start once:

1. ``step``: two language-model steps in float64 without dropout, DDP with batch B per rank against one process
   (built on rank 0 alone) with batch 2B; and the validation loss of both.
2. ``lm``: train-lm for 8 steps; 4 steps then a resume to 8; a --max-seconds run.
3. ``tagger``: the same for the tagger.

Rank 0 writes WORK_DIR/result.json with what the test asserts; every rank writes its checkpoint-callback count.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the tiny corpora

from lm_corpus import write_word_corpus  # noqa: E402
from tiny_treebank import write_treebank  # noqa: E402

from lstmkit.data import load_corpus  # noqa: E402
from lstmkit.tagger import TaggerConfig  # noqa: E402
from lstmkit.train import LoopConfig, StepInfo  # noqa: E402
from lstmkit.train.distributed import from_environment, single_process  # noqa: E402
from lstmkit.lm.task import LanguageModelTask, make_config, train_language_model  # noqa: E402
from lstmkit.train.seeding import seed_everything  # noqa: E402
from lstmkit.tagger.task import TaggerOptimConfig, TrainTaggerConfig, train_tagger  # noqa: E402

LM = ["--model.embedding_size=8", "--model.hidden_size=12", "--data.bptt=6", "--data.eval_batch_size=3",
      "--threads=1", "--train.progress=false", "--train.log_every=1", "--precision=float32"]


def step_scenario(ddp, corpus_dir: Path) -> dict:
    """DDP with B = 2 per rank vs one process with 4, dropout off, float64: parameters after two steps."""
    no_dropout = ["--model.embedding_dropout=0", "--model.input_dropout=0", "--model.hidden_dropout=0",
                  "--model.output_dropout=0", "--model.weight_dropout=0", "--data.variable_length=false",
                  "--optim.lr=5"]
    corpus = load_corpus(str(corpus_dir), "word")
    torch.set_default_dtype(torch.float64)
    try:
        def run(batch_size, context):
            config = make_config("small", LM + no_dropout + [f"--data.batch_size={batch_size}"])
            seed_everything(config.seed)
            task = LanguageModelTask(config, corpus, context)
            task.initial = {name: p.detach().clone() for name, p in task.model.named_parameters()}
            batches = task.batches(0, None)
            for step in range(2):
                window, _ = next(batches)
                task.train_step(window, StepInfo(step, 0, 0.0, None))
            return task, task.evaluate()["loss"]

        ddp_task, ddp_loss = run(2, ddp)
        result = {}
        if ddp.is_main:
            one_task, one_loss = run(4, single_process())
            ddp_params = dict(ddp_task.model.named_parameters())
            result["max_param_diff"] = max((ddp_params[name] - p).abs().max().item()
                                           for name, p in one_task.model.named_parameters())
            result["params_moved"] = max((ddp_params[name] - p).abs().max().item()
                                         for name, p in ddp_task.initial.items())
            result["ddp_valid_loss"], result["one_valid_loss"] = ddp_loss, one_loss
            result["dtype"] = str(next(ddp_task.model.parameters()).dtype)
        return result
    finally:
        torch.set_default_dtype(torch.float32)


def main() -> None:
    work = Path(sys.argv[1])
    ddp = from_environment()
    corpus_dir = work / "corpus"
    treebank = work / "treebank"
    if ddp.is_main:
        write_word_corpus(corpus_dir)
        write_treebank(treebank)
    dist.barrier()
    result = {"world_size": ddp.world_size}
    result.update(step_scenario(ddp, corpus_dir))

    calls = []

    def counted(path, state):
        calls.append(state.step)

    lm_base = make_config("small", LM + ["--data.batch_size=2", "--optim.nonmono=1", "--optim.average_from=none",
                                         "--train.eval_every=2",
                                         f"--data.path={corpus_dir}"])
    train_language_model(lm_base, work / "lm_whole", overrides=["--train.max_steps=8"], distributed=ddp,
                         on_checkpoint=counted)
    train_language_model(lm_base, work / "lm_half", overrides=["--train.max_steps=4"], distributed=ddp,
                         on_checkpoint=counted)
    train_language_model(None, work / "lm_half", resume=True, overrides=["--train.max_steps=8"], distributed=ddp,
                         on_checkpoint=counted)
    timer_calls = []
    train_language_model(lm_base, work / "lm_timer", distributed=ddp,
                         on_checkpoint=lambda path, state: timer_calls.append(state.step),
                         overrides=["--train.max_steps=7", "--train.checkpoint_seconds=0.001"])
    result["timer_checkpoints"] = timer_calls
    timed = train_language_model(lm_base, work / "lm_timed", overrides=["--train.max_seconds=1.0"],
                                 distributed=ddp)
    steps = [None] * ddp.world_size
    dist.all_gather_object(steps, timed.state.step)
    result["timed_steps"] = steps
    result["timed_reason"] = timed.stop_reason

    tiny = TaggerConfig(word_embedding_size=12, char_embedding_size=8, char_hidden_size=10, hidden_size=16)
    tagger = TrainTaggerConfig(data=str(treebank), batch_size=4, threads=1, model=tiny,
                               optim=TaggerOptimConfig(lr=0.02),
                               train=LoopConfig(max_steps=6, eval_every=3, log_every=1, progress=False))
    train_tagger(tagger, work / "tagger_whole", distributed=ddp)
    half = dataclasses.replace(tagger, train=dataclasses.replace(tagger.train, max_steps=3))
    train_tagger(half, work / "tagger_half", distributed=ddp)
    train_tagger(None, work / "tagger_half", resume=True, overrides=["--train.max_steps=6"], distributed=ddp)

    everyone = [None] * ddp.world_size
    dist.all_gather_object(everyone, calls)
    result["checkpoint_calls"] = everyone
    if ddp.is_main:
        (work / "result.json").write_text(json.dumps(result))
    dist.barrier()
    gc.collect()  # the tasks' DDP wrappers go before the process group (as Distributed.close does)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
