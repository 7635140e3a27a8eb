"""The generic training runner, driven by a toy regression task: budgets, evaluation, best, resume, signals."""

import math
import os
import signal
import time

import pytest
import torch
from torch import nn

from lstmkit.train import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    LoopConfig,
    RunDirectoryError,
    Task,
    TaskState,
    fit,
    load_checkpoint,
    read_metrics,
)


class ToyTask:
    """Linear regression with dropout (torch's global RNG), per-step noise from an explicit generator and a
    per-epoch shuffle: every kind of randomness a resume has to restore. ``seed`` sets the initial weights and
    generator states, which a resume must overwrite; ``shuffle_seed`` is configuration."""

    score_name = "loss"
    higher_is_better = False

    def __init__(self, seed=0, shuffle_seed=0, samples=48, batch_size=8, step_hook=None, eval_sleep=0.0, step_sleep=0.0, scores=None):
        torch.manual_seed(seed)
        self.model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        data = torch.Generator().manual_seed(123)
        self.x = torch.randn(samples, 3, generator=data)
        self.y = self.x @ torch.tensor([[1.0], [-2.0], [0.5]])
        self.batch_size = batch_size
        self.shuffle_seed = shuffle_seed  # configuration: a resumed task is built with the same one
        self.noise = torch.Generator().manual_seed(seed + 1)
        self.step_hook = step_hook
        self.eval_sleep, self.step_sleep = eval_sleep, step_sleep
        self.scores = list(scores) if scores is not None else None
        self.infos = []

    def batches(self, epoch, position):
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(1000 * self.shuffle_seed + epoch))
        start = position or 0
        for begin in range(start, len(self.x), self.batch_size):
            index = order[begin : begin + self.batch_size]
            yield (self.x[index], self.y[index]), begin + len(index)

    def batches_per_epoch(self):
        return math.ceil(len(self.x) / self.batch_size)

    def train_step(self, batch, info):
        self.infos.append(info)
        if self.step_hook is not None:
            self.step_hook(info)
        if self.step_sleep:
            time.sleep(self.step_sleep)
        x, y = batch
        self.model.train()
        x = x + 0.01 * torch.randn(x.shape, generator=self.noise)
        loss = (self.model(x) - y).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.item(), "tokens": len(y), "lr": 0.05}

    def evaluate(self):
        if self.eval_sleep:
            time.sleep(self.eval_sleep)
        if self.scores is not None:
            return {"loss": self.scores.pop(0)}
        self.model.eval()
        with torch.no_grad():
            return {"loss": (self.model(self.x) - self.y).pow(2).mean().item()}

    def state_dict(self):
        return TaskState(self.model.state_dict(), {"optimizer": self.optimizer.state_dict()}, {"kind": "toy"})

    def load_state_dict(self, state):
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.training["optimizer"])

    def generators(self):
        return {"noise": self.noise}


def parameters(task):
    return [p.detach().clone() for p in task.model.parameters()]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_toy_task_satisfies_the_protocol():
    assert isinstance(ToyTask(), Task)


def test_fresh_run_writes_checkpoints_and_metrics(tmp_path):
    result = fit(ToyTask(), tmp_path / "run", LoopConfig(max_steps=10, eval_every=4, log_every=2))
    assert result.stop_reason == "max_steps" and not result.interrupted
    assert result.state.step == 10 and result.state.tokens == 80
    assert result.state.evaluations == 3  # steps 4, 8 and the final one at 10
    records = read_metrics(tmp_path / "run")
    train = [r for r in records if r["split"] == "train"]
    valid = [r for r in records if r["split"] == "valid"]
    assert [r["step"] for r in train] == [2, 4, 6, 8, 10]
    assert [r["step"] for r in valid] == [4, 8, 10]
    assert all(r["tokens_per_second"] > 0 and r["lr"] == 0.05 for r in train)
    checkpoint = load_checkpoint(tmp_path / "run")
    assert checkpoint.extra["loop"]["step"] == 10
    assert checkpoint.extra["task"] == {"kind": "toy"}
    best = load_checkpoint(tmp_path / "run", name=BEST_CHECKPOINT)
    assert best.optimizer_state is None
    assert best.extra["loop"]["best_step"] == result.state.best_step


def test_epochs_evaluate_at_each_end(tmp_path):
    result = fit(ToyTask(), tmp_path, LoopConfig(max_epochs=2))
    assert result.stop_reason == "max_epochs"
    assert (result.state.epoch, result.state.step, result.state.evaluations) == (2, 12, 2)


def test_best_checkpoint_follows_the_score(tmp_path):
    task = ToyTask(scores=[3.0, 1.0, 2.0, 0.5, 0.7])
    result = fit(task, tmp_path, LoopConfig(max_steps=10, eval_every=2))
    assert (result.state.best_score, result.state.best_step) == (0.5, 8)
    valid = [r for r in read_metrics(tmp_path) if r["split"] == "valid"]
    assert [r["best"] for r in valid] == [True, True, False, True, False]
    assert load_checkpoint(tmp_path, name=BEST_CHECKPOINT).extra["loop"]["best_step"] == 8


@pytest.mark.parametrize("eval_every", [2, 0])
def test_patience_stops_after_evaluations_without_a_new_best(tmp_path, eval_every):
    task = ToyTask(scores=[3.0, 1.0, 2.0, 0.9, 1.5, 1.2, 0.1, 0.1])
    result = fit(task, tmp_path, LoopConfig(max_steps=100, eval_every=eval_every, patience=2))
    assert result.stop_reason == "patience"
    assert result.state.evaluations == 6 and result.state.best_score == 0.9
    assert result.state.step == (12 if eval_every else 36)  # evaluation 6 ends step 12 / epoch 6
    assert load_checkpoint(tmp_path).extra["loop"]["step"] == result.state.step
    again = fit(ToyTask(), tmp_path, LoopConfig(max_steps=100, eval_every=eval_every, patience=2),
                checkpoint=load_checkpoint(tmp_path))
    assert again.stop_reason == "patience" and again.state.step == result.state.step
    with pytest.raises(ValueError, match="patience"):
        LoopConfig(patience=0)


class Crash(Exception):
    pass


def crash_at(step):
    def hook(path, state):
        if state.step == step:
            raise Crash

    return hook


@pytest.mark.parametrize("eval_every", [4, 0])
def test_resume_after_a_crash_is_exact(tmp_path, eval_every):
    config = LoopConfig(max_steps=16, eval_every=eval_every)
    whole = ToyTask()
    fit(whole, tmp_path / "whole", config)

    crash_step = 8 if eval_every else 6  # an evaluation step, mid-epoch / at an epoch's end
    with pytest.raises(Crash):
        fit(ToyTask(), tmp_path / "split", config, on_checkpoint=crash_at(crash_step))
    checkpoint = load_checkpoint(tmp_path / "split")
    assert checkpoint.extra["loop"]["step"] == crash_step
    resumed = ToyTask(seed=5)  # different initial weights and generators: the checkpoint must restore them
    result = fit(resumed, tmp_path / "split", config, checkpoint=checkpoint)
    assert result.state.step == 16
    assert_same(parameters(resumed), parameters(whole))
    assert [i.step for i in resumed.infos] == list(range(crash_step, 16))
    assert result.state.best_score == load_checkpoint(tmp_path / "whole").extra["loop"]["best_score"]


def test_sigterm_checkpoints_and_resumes_exactly(tmp_path):
    config = LoopConfig(max_steps=12, eval_every=100)
    whole = ToyTask()
    fit(whole, tmp_path / "whole", config)

    def send(info):
        if info.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    result = fit(ToyTask(step_hook=send), tmp_path / "split", config)
    assert result.stop_reason == "signal" and result.signal == signal.SIGTERM
    assert result.state.step == 5  # the step in progress completes
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    resumed = ToyTask(seed=9)
    fit(resumed, tmp_path / "split", config, checkpoint=load_checkpoint(tmp_path / "split"))
    assert_same(parameters(resumed), parameters(whole))


def test_max_seconds_counts_training_time_only(tmp_path):
    task = ToyTask(step_sleep=0.01, eval_sleep=0.15)
    started = time.perf_counter()
    result = fit(task, tmp_path, LoopConfig(max_seconds=0.1, eval_every=2))
    wall = time.perf_counter() - started
    assert result.stop_reason == "max_seconds"
    assert 0.1 <= result.state.train_seconds < 0.1 + 0.5
    assert result.state.step >= 5  # evaluation time (0.15 s each) did not eat the budget
    assert wall >= result.state.train_seconds + 0.15 * (result.state.evaluations - 1)
    fractions = [i.budget_fraction for i in task.infos]
    assert fractions == sorted(fractions) and 0 <= fractions[0] < fractions[-1] <= 1


def test_budget_already_spent_on_resume_only_finishes(tmp_path):
    fit(ToyTask(), tmp_path, LoopConfig(max_steps=4))
    task = ToyTask()
    result = fit(task, tmp_path, LoopConfig(max_steps=4), checkpoint=load_checkpoint(tmp_path))
    assert result.state.step == 4 and task.infos == []
    result = fit(task, tmp_path, LoopConfig(max_steps=6), checkpoint=load_checkpoint(tmp_path))
    assert result.state.step == 6 and [i.step for i in task.infos] == [4, 5]


def test_new_run_refuses_a_used_directory(tmp_path):
    fit(ToyTask(), tmp_path, LoopConfig(max_steps=2))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        fit(ToyTask(), tmp_path, LoopConfig(max_steps=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / LAST_CHECKPOINT).is_dir()


def test_empty_epoch_is_an_error(tmp_path):
    task = ToyTask()
    task.batches = lambda epoch, position: iter(())
    with pytest.raises(ValueError, match="no training batches"):
        fit(task, tmp_path, LoopConfig(max_epochs=1))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"max_steps": -1}, "max_steps"), ({"eval_every": -2}, "eval_every"), ({"log_every": 0}, "log_every"),
     ({"max_seconds": -1.0}, "max_seconds")],
)
def test_config_checks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoopConfig(**kwargs)
