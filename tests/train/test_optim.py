import pytest
import torch
from torch import nn

from lstmkit.train import NTASGD


def make(nonmono=2, momentum=0.0):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    return model, NTASGD(model.parameters(), lr=0.1, momentum=momentum, nonmono=nonmono)


def sgd_step(model, optimizer):
    x = torch.randn(4, 3)
    optimizer.zero_grad()
    model(x).pow(2).mean().backward()
    optimizer.step()


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_switches_when_loss_is_worse_than_the_best_before_the_last_nonmono():
    _, optimizer = make(nonmono=2)
    # index: 0    1    2    3    4    5 ; at 5: min(losses[:3]) = 3.0 < 3.7
    losses = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7]
    switched = [optimizer.step_validation(loss) for loss in losses]
    assert switched == [False] * 5 + [True]
    assert optimizer.averaging and optimizer.validation_losses == losses
    assert not optimizer.step_validation(9.0)  # switches only once


def test_keeps_improving_never_switches_and_nonmono_zero_switches_at_first_stall():
    _, optimizer = make(nonmono=3)
    assert not any(optimizer.step_validation(10.0 - i) for i in range(10))
    _, eager = make(nonmono=0)
    assert [eager.step_validation(loss) for loss in [3.0, 2.0, 2.5]] == [False, False, True]


def test_behaves_as_sgd_before_the_switch():
    model, optimizer = make(momentum=0.9)
    torch.manual_seed(0)
    reference = nn.Linear(3, 2)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(4):
        torch.manual_seed(1)
        sgd_step(model, optimizer)
        torch.manual_seed(1)
        sgd_step(reference, reference_optimizer)
    assert torch.equal(flat(model), flat(reference))


def test_average_is_the_mean_of_the_iterates_since_the_switch():
    model, optimizer = make()
    for _ in range(3):
        sgd_step(model, optimizer)
    optimizer.start_averaging()
    iterates = [flat(model)]
    for _ in range(5):
        sgd_step(model, optimizer)
        iterates.append(flat(model))
    raw = flat(model)
    assert optimizer.num_averaged == 6 and optimizer.averaging_since == 3 and optimizer.num_steps == 8
    with optimizer.swap_to_average() as same:
        assert same is optimizer
        torch.testing.assert_close(flat(model), torch.stack(iterates).mean(0), rtol=1e-6, atol=1e-7)
    assert torch.equal(flat(model), raw)  # the raw SGD iterate is back


def test_swap_is_a_no_op_before_averaging_and_guards_misuse():
    model, optimizer = make()
    sgd_step(model, optimizer)
    before = flat(model)
    optimizer.swap_to_average()
    assert torch.equal(flat(model), before)
    with pytest.raises(RuntimeError, match="called twice without swap_back"):
        optimizer.swap_to_average()
    optimizer.swap_back()
    with pytest.raises(RuntimeError, match="swap_back\\(\\) called without swap_to_average"):
        optimizer.swap_back()
    optimizer.start_averaging()
    with optimizer.swap_to_average():
        with pytest.raises(RuntimeError, match="step\\(\\) called while the averaged parameters are swapped in"):
            optimizer.step()
        with pytest.raises(RuntimeError, match="state_dict\\(\\) called while the averaged parameters"):
            optimizer.state_dict()


def test_state_dict_round_trip():
    model, optimizer = make(momentum=0.5)
    for loss in [3.0, 2.0, 2.5, 2.6, 2.7]:
        sgd_step(model, optimizer)
        optimizer.step_validation(loss)
    assert optimizer.averaging
    state = optimizer.state_dict()
    restored_model, restored = make(nonmono=7, momentum=0.5)
    restored_model.load_state_dict(model.state_dict())
    restored.load_state_dict(state)
    assert restored.nonmono == 2 and restored.validation_losses == optimizer.validation_losses
    assert (restored.averaging, restored.num_steps, restored.averaging_since, restored.num_averaged) == (
        optimizer.averaging, optimizer.num_steps, optimizer.averaging_since, optimizer.num_averaged)
    for p, q in zip(model.parameters(), restored_model.parameters()):
        assert torch.equal(optimizer.state[p]["average"], restored.state[q]["average"])
        assert torch.equal(optimizer.state[p]["momentum_buffer"], restored.state[q]["momentum_buffer"])
    with pytest.raises(ValueError, match="not from NTASGD"):
        restored.load_state_dict(torch.optim.SGD(model.parameters(), lr=0.1).state_dict())


def test_works_with_lr_schedulers():
    model, optimizer = make()
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    sgd_step(model, optimizer)
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_bad_nonmono():
    with pytest.raises(ValueError, match="Invalid nonmono value: -1"):
        NTASGD(nn.Linear(1, 1).parameters(), lr=0.1, nonmono=-1)
