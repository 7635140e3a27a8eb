import io
import math

from lstmkit.train import TrainingProgress, perplexity, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_silent_when_not_a_terminal_or_disabled():
    stream = io.StringIO()
    with TrainingProgress(total=3, desc="epoch 1", file=stream) as progress:
        progress.update(loss=2.0, num_tokens=10)
    assert progress.disabled and stream.getvalue() == ""
    terminal = FakeTerminal()
    with TrainingProgress(total=3, file=terminal, disable=True) as progress:
        progress.update(loss=2.0, num_tokens=10)
    assert terminal.getvalue() == ""
    assert list(progress_bar(range(3), file=stream)) == [0, 1, 2] and stream.getvalue() == ""


def test_shows_loss_perplexity_and_throughput_on_a_terminal():
    terminal = FakeTerminal()
    with TrainingProgress(total=2, desc="epoch 1", file=terminal) as progress:
        progress.update(loss=math.log(100.0), num_tokens=20)
        progress.update(loss=math.log(100.0), num_tokens=20)
        progress.bar.refresh()
    output = terminal.getvalue()
    assert "epoch 1" in output and "loss=4.605" in output and "ppl=100.0" in output and "tok/s=" in output


def test_mean_loss_is_token_weighted_and_perplexity_can_be_hidden():
    progress = TrainingProgress(disable=True, show_perplexity=False)
    assert math.isnan(progress.mean_loss)
    progress.update(loss=1.0, num_tokens=1)
    progress.update(loss=4.0, num_tokens=3)
    assert progress.mean_loss == 3.25
    assert progress.postfix().startswith("loss=3.250 tok/s=") and "ppl" not in progress.postfix()
    progress.close()


def test_perplexity_overflow():
    assert perplexity(0.0) == 1.0 and perplexity(1e6) == math.inf
