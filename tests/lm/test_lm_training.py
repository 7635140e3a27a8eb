"""The language-model task: presets, the training step (lr scaling, detached state), NT-ASGD wiring, schedules,
and exact resume in-process (the SIGKILL version is in tests/test_cli_lm.py)."""

import math

import pytest
import torch

from lm_corpus import TINY_OVERRIDES, write_word_corpus
from lstmkit.data import load_corpus
from lstmkit.train import CheckpointError, ConfigError, StepInfo, load_checkpoint
from lstmkit.lm.task import LanguageModelTask, LMOptimConfig, make_config, preset_config, train_language_model
from lstmkit.train.optim import NTASGD


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return load_corpus(write_word_corpus(tmp_path_factory.mktemp("corpus")))


def tiny(*extra, preset="small"):
    return make_config(preset, TINY_OVERRIDES + list(extra))


def test_presets_follow_the_recipes():
    small, awd = preset_config("small"), preset_config("awd")
    assert (small.model.embedding_size, small.model.hidden_size, small.model.num_layers) == (200, 400, 2)
    assert (small.data.bptt, small.data.batch_size) == (35, 20)
    s = small.model
    assert (s.input_dropout, s.hidden_dropout, s.output_dropout, s.embedding_dropout, s.weight_dropout) == (
        0.15, 0.1, 0.15, 0.0, 0.15)
    assert (s.ar_alpha, s.tar_beta, small.optim.optimizer, small.optim.average_from) == (2.0, 1.0, "ntasgd", 0.5)
    assert (awd.model.embedding_size, awd.model.hidden_size, awd.model.num_layers) == (400, 1150, 3)
    assert (awd.data.bptt, awd.data.batch_size) == (70, 40)
    m = awd.model
    assert (m.input_dropout, m.hidden_dropout, m.output_dropout, m.embedding_dropout, m.weight_dropout) == (
        0.4, 0.3, 0.4, 0.1, 0.5)
    assert (m.ar_alpha, m.tar_beta, m.tie_weights) == (2.0, 1.0, True)
    o = awd.optim
    assert (o.optimizer, o.lr, o.clip, o.weight_decay, o.nonmono) == ("ntasgd", 30.0, 0.25, 1.2e-6, 5)
    assert awd.train.max_epochs == 750 and o.average_from is None
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose from small, awd"):
        preset_config("huge")
    assert make_config("awd", ["--optim.lr=20", "--model.hidden_size=800"]).model.hidden_size == 800
    with pytest.raises(ConfigError, match="model.bogus"):
        make_config("small", ["--model.bogus=1"])
    with pytest.raises(ConfigError, match="weight_dropout"):
        make_config("small", ["--model.weight_dropout=1.5"])


def test_precision_resolves():
    from lstmkit.lm.task import cpu_has_native_bfloat16, resolve_precision

    assert resolve_precision("float32") == torch.float32 and resolve_precision("bfloat16") == torch.bfloat16
    assert resolve_precision("auto") == (torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32)
    with pytest.raises(ConfigError, match="precision"):
        make_config("small", ["--precision=fp8"])


def test_bfloat16_training_steps_keep_float32_state(corpus):
    task = LanguageModelTask(tiny("--precision=bfloat16"), corpus)
    windows = iter(task.batches(0, None))
    for index in range(2):
        metrics = task.train_step(next(windows)[0], StepInfo(index, 0, 0.0, None))
        assert math.isfinite(metrics["loss"])
    assert all(h.dtype == torch.float32 for pair in task.hidden for h in pair)
    assert all(p.dtype == torch.float32 for p in task.model.parameters())


def test_lr_schedules():
    assert LMOptimConfig().lr_factor(0.5) == 1.0
    linear = LMOptimConfig(schedule="linear", final_lr_fraction=0.1)
    assert linear.lr_factor(0.0) == 1.0 and math.isclose(linear.lr_factor(1.0), 0.1)
    cosine = LMOptimConfig(schedule="cosine")
    assert math.isclose(cosine.lr_factor(0.5), 0.5) and cosine.lr_factor(None) == 1.0


def test_train_step_scales_lr_by_window_length_and_detaches_the_state(corpus):
    task = LanguageModelTask(tiny("--optim.lr=2.0"), corpus)
    seen = []
    step = task.optimizer.step

    def recording_step(*args, **kwargs):
        seen.append(task.optimizer.param_groups[0]["lr"])
        return step(*args, **kwargs)

    task.optimizer.step = recording_step
    windows = iter(task.batches(0, None))
    for index in range(3):
        window, position = next(windows)
        metrics = task.train_step(window, StepInfo(index, 0, 0.0, None))
        assert math.isclose(seen[-1], 2.0 * window.seq_len / 6)
        assert task.optimizer.param_groups[0]["lr"] == 2.0
        assert position == window.next_start
        assert all(h.grad_fn is None and c.grad_fn is None for h, c in task.hidden)
        assert metrics["tokens"] == window.seq_len * 4 and metrics["loss"] > 0


def test_evaluation_feeds_nt_asgd_and_uses_the_average(corpus):
    task = LanguageModelTask(tiny("--optim.average_from=0.5"), corpus)
    assert isinstance(task.optimizer, NTASGD)
    windows = iter(task.batches(0, None))
    task.train_step(next(windows)[0], StepInfo(0, 0, 0.0, 0.2))
    assert not task.optimizer.averaging
    task.train_step(next(windows)[0], StepInfo(1, 0, 0.0, 0.6))  # half the budget spent: averaging starts
    assert task.optimizer.averaging
    task.train_step(next(windows)[0], StepInfo(2, 0, 0.0, 0.7))
    raw = {k: v.clone() for k, v in task.model.state_dict().items()}
    result = task.evaluate()
    assert task.optimizer.validation_losses == [result["loss"]] and result["averaging"] == 1.0
    assert math.isclose(result["ppl"], math.exp(result["loss"]))
    exported = task.export_state().model
    average = {name: task.optimizer.state[p]["average"] for name, p in task.model.named_parameters()}
    assert torch.equal(exported["layers.0.weight_hh_l0"], average["layers.0.weight_hh_l0"])
    assert not torch.equal(exported["layers.0.weight_hh_l0"], raw["layers.0.weight_hh_l0"])
    assert all(torch.equal(v, task.model.state_dict()[k]) for k, v in raw.items())  # raw weights are back


class Crash(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["ntasgd", "adam"])
def test_resume_after_a_crash_ends_with_identical_parameters(tmp_path, corpus, optimizer):
    data = write_word_corpus(tmp_path / "corpus")
    extra = [f"--data.path={data}", f"--optim.optimizer={optimizer}", "--train.max_steps=12",
             "--train.eval_every=4", "--optim.average_from=0.4", "--optim.nonmono=0"]
    if optimizer == "adam":
        extra.append("--optim.lr=0.003")
    config = tiny(*extra)
    train_language_model(config, tmp_path / "whole")

    def crash(path, state):
        if state.step == 4:
            raise Crash

    with pytest.raises(Crash):
        train_language_model(config, tmp_path / "split", on_checkpoint=crash)
    result = train_language_model(None, tmp_path / "split", resume=True)
    assert result.state.step == 12
    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    for key, value in whole.model_state.items():
        assert torch.equal(value, split.model_state[key]), key
    assert whole.extra["loop"]["best_score"] == split.extra["loop"]["best_score"]


def test_resume_refuses_another_vocabulary(tmp_path):
    run = tmp_path / "run"
    first = write_word_corpus(tmp_path / "a")
    other = write_word_corpus(tmp_path / "b", extra_words=("zeppelin",))
    train_language_model(tiny(f"--data.path={first}", "--train.max_steps=2"), run)
    with pytest.raises(CheckpointError, match="another vocabulary"):
        train_language_model(None, run, resume=True, overrides=[f"--data.path={other}"])
