"""Drop-in replacements for ``torch.nn.LSTM`` and ``torch.nn.LSTMCell``.

Same constructor arguments and defaults, parameter names and shapes, gate layout (i, f, g, o), initialisation,
input forms, return values and validation errors as torch, so state_dicts load both ways. The extra keyword
``impl`` picks the computation (see :func:`lstmkit.ops.resolve_impl`).

Letters: T time steps, B batch, I input features, H hidden units, P = proj_size or H, L layers, D directions.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..ops.functional import IMPLS, LayerWeights, lstm, lstm_cell
from ..ops.masks import bernoulli_mask, check_probability, drop_weight
from ..ops.reference import NO_VARIANT, Variant

__all__ = ["LSTM", "LSTMCell"]

LAYER_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")  # the order of LayerWeights


def _zoneout_pair(zoneout) -> tuple[float, float]:
    """``zoneout`` as (p for h, p for c): one number serves both."""
    pair = tuple(zoneout) if isinstance(zoneout, (tuple, list)) else (zoneout, zoneout)
    if len(pair) != 2:
        raise ValueError(f"zoneout must be a probability or a pair (p_h, p_c), got {zoneout!r}")
    for p in pair:
        check_probability(p, "zoneout", allow_one=False)
    return float(pair[0]), float(pair[1])


def _check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    return impl


def _check_state(name: str, tensor: Tensor, like: Tensor, expected: tuple[int, ...]) -> None:
    """torch's hidden-size check, plus the dtype and device checks torch leaves to its kernels."""
    if tuple(tensor.shape) != expected:
        raise RuntimeError(f"Expected {name} size {expected}, got {list(tensor.shape)}")
    if tensor.dtype != like.dtype:
        raise ValueError(f"{name} has dtype {tensor.dtype} but the input has dtype {like.dtype}")
    if tensor.device != like.device:
        raise ValueError(f"{name} is on {tensor.device} but the input is on {like.device}")


def _apply_permutation(tensor: Tensor, permutation: Tensor | None) -> Tensor:
    return tensor if permutation is None else tensor.index_select(1, permutation)  # (L * D, B, .)


def _check_flags(**flags: object) -> None:
    """Each flag must be a bool: ``layer_norm="yes"`` is a mistake, not True."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")


def _check_sizes(**sizes: object) -> None:
    """Each size must be an int (``True`` is not a size)."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")


def _check_finite(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


class LSTM(nn.Module):
    r"""A multi-layer LSTM, the same module as ``torch.nn.LSTM`` with a choice of implementation.

    For each element of the input sequence, each layer computes

    .. math::
        \begin{array}{ll}
        i_t = \sigma(W_{ii} x_t + b_{ii} + W_{hi} h_{t-1} + b_{hi}) \\
        f_t = \sigma(W_{if} x_t + b_{if} + W_{hf} h_{t-1} + b_{hf}) \\
        g_t = \tanh(W_{ig} x_t + b_{ig} + W_{hg} h_{t-1} + b_{hg}) \\
        o_t = \sigma(W_{io} x_t + b_{io} + W_{ho} h_{t-1} + b_{ho}) \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t = o_t \odot \tanh(c_t)
        \end{array}

    Layer k > 0 takes the previous layer's h (both directions concatenated when bidirectional) as its x, after
    dropout with probability ``dropout`` in training. With ``proj_size > 0``, :math:`h_t = W_{hr} (o_t \odot
    \tanh(c_t))` has ``proj_size`` features.

    Args:
        input_size: features I of the input x.
        hidden_size: features H of the cell state (and of h without projection).
        num_layers: stacked layers L. Default 1.
        bias: use the biases ``b_ih`` and ``b_hh``. Default True.
        batch_first: input and output are (B, T, .) instead of (T, B, .); the states are not affected. Default False.
        dropout: dropout probability on the outputs of every layer but the last, in training. Default 0.
        bidirectional: run a second LSTM over the reversed sequence and concatenate. Default False.
        proj_size: project h to this size (LSTMP); 0 disables. Default 0.
        device, dtype: where and in which precision to create the parameters.
        impl: ``"auto"`` (fastest for the configuration), ``"native"`` (torch's kernel: oneDNN on CPU, cuDNN on
            GPU), ``"fused"`` (lstmkit's loop with a hand-written backward) or ``"reference"`` (the equations,
            autograd backward). Default ``"auto"``.
        weight_dropout: DropConnect on each ``weight_hh`` (Wan et al. 2013; AWD-LSTM, Merity et al. 2017): in
            training every forward call draws one mask over R's entries, used at every time step, and scales the
            survivors by 1/(1-p). The raw parameter keeps its name and gets the gradient; nothing is patched, so
            torch's kernel still runs and train/eval switches, ``.to()``, deepcopy, pickling and state_dicts
            behave as for any module. Default 0.
        forget_bias: added to the forget-gate rows of ``bias_ih`` at initialisation (Jozefowicz et al. 2015
            recommend 1). Default 0.
        recurrent_dropout: variational dropout on the h fed back into the recurrence (Gal and Ghahramani 2016):
            :math:`R (h_{t-1} \odot m)` with one mask m per sequence, layer and direction, constant over time,
            survivors scaled 1/(1-p). The output h is not dropped. Default 0.
        zoneout: p, or (p_h, p_c) (Krueger et al. 2017): in training each unit keeps its previous value with that
            probability, :math:`h_t = d_t \odot h_{t-1} + (1 - d_t) \odot h'_t` with a fresh Bernoulli mask
            :math:`d_t` every step (the same for c); in eval the expectation :math:`h_t = p h_{t-1} + (1-p) h'_t`.
            :math:`h'_t` uses the new cell before zoneout, as in the paper. Default 0.
        layer_norm: the layer-normalised LSTM of Ba, Kiros and Hinton 2016 (eqs. 20-22):
            :math:`(i, f, g, o) = LN(W x_t) + LN(R h_{t-1}) + b`, the cell :math:`c_t` carried un-normalised, and
            :math:`h_t = o_t \odot \tanh(LN(c_t))`, each LN with its own gain and bias. (pytorch's
            benchmarks/fastrnns custom_lstms.py carries the normalised c instead; we follow the paper.)
            Default False.
        peephole: diagonal peephole connections (Gers, Schraudolph and Schmidhuber 2002): i and f get
            :math:`w_{ci} \odot c_{t-1}` and :math:`w_{cf} \odot c_{t-1}`, o gets :math:`w_{co} \odot c_t`.
            Default False.
        cell_clip: clip :math:`c_t` to [-cell_clip, cell_clip] after each update, as LSTMP implementations for
            speech do. Default None.

        Every option combines with the others and with num_layers, bidirectional, proj_size, batch_first, packed
        input and dropout; all but weight_dropout and forget_bias run on the fused path (``impl="auto"`` picks it,
        or the reference layer for a call with a single time step, where it is faster; ``impl="native"`` refuses
        them).

    Inputs: input, (h_0, c_0)
        - input: (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a ``PackedSequence``.
        - h_0: (D * L, B, P) or (D * L, P) for unbatched input; zeros if not given.
        - c_0: (D * L, B, H) or (D * L, H); zeros if not given.

    Outputs: output, (h_n, c_n)
        - output: (T, B, D * P) (batch-first or unbatched like the input), a ``PackedSequence`` for packed input.
        - h_n: (D * L, B, P), the final h of every layer and direction. For the reverse direction that is its
          state after the first time step; for packed input, each sequence's state after its own last step.
        - c_n: (D * L, B, H), the final cell states.

    Attributes:
        weight_ih_l[k]: (4H, I) for k = 0, (4H, D * P) after; rows are W_i, W_f, W_g, W_o.
        weight_hh_l[k]: (4H, P). bias_ih_l[k], bias_hh_l[k]: (4H,). weight_hr_l[k]: (P, H) with ``proj_size``.
        Suffix ``_reverse`` for the reverse direction. All initialised from U(-1/sqrt(H), 1/sqrt(H)).
        With ``peephole``: weight_ci_l[k], weight_cf_l[k], weight_co_l[k] (H,), same initialisation.
        With ``layer_norm``: ln_ih_weight_l[k], ln_ih_bias_l[k] (4H,), ln_hh_weight_l[k], ln_hh_bias_l[k] (4H,),
        ln_c_weight_l[k], ln_c_bias_l[k] (H,); gains start at 1, biases at 0. They are registered after torch's
        parameters, so the same seed gives torch's initial weights.

    Example::

        >>> lstm = lstmkit.LSTM(10, 20, num_layers=2)
        >>> output, (h_n, c_n) = lstm(torch.randn(5, 3, 10))      # (T=5, B=3, I=10)
        >>> output.shape, h_n.shape
        (torch.Size([5, 3, 20]), torch.Size([2, 3, 20]))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        weight_dropout: float = 0.0,
        forget_bias: float = 0.0,
        recurrent_dropout: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        layer_norm: bool = False,
        peephole: bool = False,
        cell_clip: float | None = None,
    ) -> None:
        super().__init__()
        _check_flags(bidirectional=bidirectional, layer_norm=layer_norm, peephole=peephole)
        _check_sizes(num_layers=num_layers, proj_size=proj_size)
        _check_finite("forget_bias", forget_bias)
        check_probability(weight_dropout, "weight_dropout", allow_one=False)
        check_probability(recurrent_dropout, "recurrent_dropout", allow_one=False)
        zoneout_h, zoneout_c = _zoneout_pair(zoneout)
        if cell_clip is not None and (not isinstance(cell_clip, numbers.Number) or cell_clip <= 0):
            raise ValueError(f"cell_clip must be a positive number or None, got {cell_clip!r}")
        if forget_bias and not bias:
            raise ValueError(f"forget_bias={forget_bias} needs bias=True: there is no bias to add it to")
        if not isinstance(dropout, numbers.Number) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero dropout expects "
                f"num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                stacklevel=2,
            )
        for name, value, kind in (("bias", bias, bool), ("batch_first", batch_first, bool)):
            if not isinstance(value, kind):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")

        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        self.impl = _check_impl(impl)
        self.weight_dropout = float(weight_dropout)
        self.forget_bias = float(forget_bias)
        self.recurrent_dropout = float(recurrent_dropout)
        self.zoneout = (zoneout_h, zoneout_c)
        self.layer_norm = bool(layer_norm)
        self.peephole = bool(peephole)
        self.cell_clip = float(cell_clip) if cell_clip is not None else None

        factory = {"device": device, "dtype": dtype}
        directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        # registration order = torch's, so the same seed gives the same initial weights
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else real_hidden * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {"weight_ih": (4 * hidden_size, layer_input), "weight_hh": (4 * hidden_size, real_hidden)}
                if bias:
                    shapes.update(bias_ih=(4 * hidden_size,), bias_hh=(4 * hidden_size,))
                if proj_size > 0:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = []
                for kind, shape in shapes.items():
                    setattr(self, kind + suffix, nn.Parameter(torch.empty(shape, **factory)))
                    names.append(kind + suffix)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        # per layer and direction: the names of (w_ih, w_hh, b_ih, b_hh, w_hr), None where absent
        self._layer_names = [
            tuple(next((n for n in names if n.startswith(kind + "_l")), None) for kind in LAYER_KINDS)
            for names in self._all_weights
        ]
        # the variants' parameters come after all of torch's, so torch's weights get the same initial values
        self._variant_names: list[dict[str, str]] = []
        for layer in range(num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {}
                if peephole:
                    shapes.update(weight_ci=(hidden_size,), weight_cf=(hidden_size,), weight_co=(hidden_size,))
                if layer_norm:
                    shapes.update(
                        ln_ih_weight=(4 * hidden_size,), ln_ih_bias=(4 * hidden_size,),
                        ln_hh_weight=(4 * hidden_size,), ln_hh_bias=(4 * hidden_size,),
                        ln_c_weight=(hidden_size,), ln_c_bias=(hidden_size,),
                    )
                for kind, shape in shapes.items():
                    setattr(self, kind + suffix, nn.Parameter(torch.empty(shape, **factory)))
                self._variant_names.append({kind: kind + suffix for kind in shapes})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/sqrt(H), 1/sqrt(H)), in registration order (as torch does); then
        ``forget_bias`` is added to the forget-gate rows of each ``bias_ih``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        for names in self._variant_names:  # layer-norm gains 1 and biases 0; peepholes keep the uniform draw
            for kind, name in names.items():
                if kind.startswith("ln_"):
                    nn.init.ones_(getattr(self, name)) if kind.endswith("weight") else nn.init.zeros_(getattr(self, name))
        if self.forget_bias:
            with torch.no_grad():
                for names in self._all_weights:
                    bias_ih = getattr(self, names[2])  # weight_ih, weight_hh, bias_ih, ...
                    bias_ih[self.hidden_size : 2 * self.hidden_size] += self.forget_bias

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Parameters grouped per layer and direction, as ``torch.nn.LSTM.all_weights``."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def layer_weights(self) -> list[LayerWeights]:
        """One :class:`~lstmkit.ops.LayerWeights` per layer and direction, in torch's flat order, as this forward
        call uses them: with ``weight_dropout`` in training, ``weight_hh`` is a freshly dropped copy (DropConnect);
        the parameter itself is never modified and receives the gradient through the copy."""
        drop = self.weight_dropout if self.training else 0.0
        out = []
        for names in self._layer_names:
            w_ih, w_hh, b_ih, b_hh, w_hr = (getattr(self, n) if n is not None else None for n in names)
            if drop > 0:
                w_hh = drop_weight(w_hh, drop)  # (4H, P), survivors scaled 1/(1-p)
            out.append(LayerWeights(w_ih, w_hh, b_ih, b_hh, w_hr))
        return out

    def has_variant(self) -> bool:
        """Whether an option needs more than torch's LSTM (weight dropout and forget bias do not)."""
        return bool(
            self.layer_norm or self.peephole or self.cell_clip is not None or any(self.zoneout)
            or (self.recurrent_dropout and self.training)
        )

    def variants(self) -> list[Variant]:
        """One :class:`~lstmkit.ops.reference.Variant` per layer and direction: the variant parameters, the cell
        clip and the zoneout probabilities (the op draws the masks in training)."""
        out = []
        for names in self._variant_names:
            get = lambda kind: getattr(self, names[kind])  # noqa: E731
            out.append(
                Variant(
                    peephole=torch.stack([get("weight_ci"), get("weight_cf"), get("weight_co")]) if self.peephole else None,
                    ln_ih=(get("ln_ih_weight"), get("ln_ih_bias")) if self.layer_norm else None,
                    ln_hh=(get("ln_hh_weight"), get("ln_hh_bias")) if self.layer_norm else None,
                    ln_c=(get("ln_c_weight"), get("ln_c_bias")) if self.layer_norm else None,
                    zoneout_h=self.zoneout[0],
                    zoneout_c=self.zoneout[1],
                    cell_clip=self.cell_clip,
                )
            )
        return out

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {
            "num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False,
            "proj_size": 0, "impl": "auto", "weight_dropout": 0.0, "forget_bias": 0.0, "recurrent_dropout": 0.0,
            "zoneout": (0.0, 0.0), "layer_norm": False, "peephole": False, "cell_clip": None,
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            if value != default:
                s += f", {name}={value!r}"
        return s

    def _check_input(self, x: Tensor, packed: bool) -> None:
        weight = self.weight_ih_l0
        if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
            raise ValueError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: model.to({x.dtype})"
            )
        if x.device != weight.device:
            raise ValueError(f"input is on {x.device} but the LSTM's weights are on {weight.device}; move one of them")
        expected_dim = 2 if packed else 3
        if x.dim() != expected_dim:
            raise RuntimeError(f"input must have {expected_dim} dimensions, got {x.dim()}")
        if x.size(-1) != self.input_size:
            raise RuntimeError(
                f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}"
            )
        if not packed and (x.size(0) == 0 or x.size(1) == 0):
            raise ValueError(
                f"LSTM: input has an empty time or batch dimension (shape {tuple(x.shape)}); "
                "give at least one step of one sequence"
            )

    def forward(self, input, hx: tuple[Tensor, Tensor] | None = None):
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = batch_sizes = None
        is_batched = True
        if packed:
            x, batch_sizes, sorted_indices, unsorted_indices = input
            batch = int(batch_sizes[0])
        else:
            x = input
            if x.dim() not in (2, 3):
                raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {x.dim()}D instead")
            is_batched = x.dim() == 3
            if not is_batched:
                x = x.unsqueeze(0 if self.batch_first else 1)
            batch = x.size(0) if self.batch_first else x.size(1)
        self._check_input(x, packed)

        if hx is None:
            layers = self.num_layers * directions
            hx = (
                x.new_zeros(layers, batch, real_hidden),
                x.new_zeros(layers, batch, self.hidden_size),
            )
        else:
            want = 3 if is_batched else 2
            if hx[0].dim() != want or hx[1].dim() != want:
                kind = "batched 3-D" if is_batched else "unbatched 2-D"
                raise RuntimeError(
                    f"For {kind} input, hx and cx should also be {want}-D but got "
                    f"({hx[0].dim()}-D, {hx[1].dim()}-D) tensors"
                )
            if not is_batched:
                hx = (hx[0].unsqueeze(1), hx[1].unsqueeze(1))
            layers = self.num_layers * directions
            _check_state("hidden[0]", hx[0], x, (layers, batch, real_hidden))
            _check_state("hidden[1]", hx[1], x, (layers, batch, self.hidden_size))
            hx = (_apply_permutation(hx[0], sorted_indices), _apply_permutation(hx[1], sorted_indices))

        output, (h_n, c_n) = lstm(
            x,
            hx,
            self.layer_weights(),
            num_layers=self.num_layers,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
            training=self.training,
            batch_first=self.batch_first,
            batch_sizes=batch_sizes,
            impl=self.impl,
            variants=self.variants() if self.has_variant() else None,
            recurrent_dropout=self.recurrent_dropout if self.training else 0.0,
        )
        if packed:
            output = PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices)
            return output, (_apply_permutation(h_n, unsorted_indices), _apply_permutation(c_n, unsorted_indices))
        if not is_batched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)


class LSTMCell(nn.Module):
    r"""One LSTM step, the same module as ``torch.nn.LSTMCell`` with a choice of implementation.

    .. math::
        \begin{array}{ll}
        (i, f, g, o) = \text{chunk}_4(W_{ih} x + b_{ih} + W_{hh} h + b_{hh}) \\
        c' = \sigma(f) \odot c + \sigma(i) \odot \tanh(g) \\
        h' = \sigma(o) \odot \tanh(c')
        \end{array}

    ``torch.nn.LSTM`` is this cell looped over time (and over layers), computed by one kernel.

    Args:
        input_size: features I of x. hidden_size: features H of h and c. bias: use b_ih and b_hh (default True).
        device, dtype: for the parameters. impl: as for :class:`LSTM` (``"auto"`` is torch's kernel, or the
            reference cell when a variant option is on: for one step it is faster than the fused layer).
        forget_bias, zoneout, layer_norm, peephole, cell_clip: the variants of :class:`LSTM`, for one step (zoneout
            draws a fresh mask per call in training). Recurrent dropout needs one mask for a whole sequence, so it
            lives on :class:`LSTM` only.

    Inputs: input (B, I) or (I,); hx = (h_0, c_0) each (B, H) or (H,), zeros if not given.

    Outputs: (h_1, c_1), each (B, H) or (H,).

    Attributes:
        weight_ih (4H, I), weight_hh (4H, H), bias_ih (4H,), bias_hh (4H,); rows in the order i, f, g, o.

    Example::

        >>> cell = lstmkit.LSTMCell(10, 20)
        >>> h, c = cell(torch.randn(3, 10))
        >>> h.shape
        torch.Size([3, 20])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        impl: str = "auto",
        forget_bias: float = 0.0,
        zoneout: float | tuple[float, float] = 0.0,
        layer_norm: bool = False,
        peephole: bool = False,
        cell_clip: float | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        _check_flags(bias=bias, layer_norm=layer_norm, peephole=peephole)
        _check_sizes(input_size=input_size, hidden_size=hidden_size)
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        _check_finite("forget_bias", forget_bias)
        if forget_bias and not bias:
            raise ValueError(f"forget_bias={forget_bias} needs bias=True: there is no bias to add it to")
        if cell_clip is not None and (not isinstance(cell_clip, numbers.Number) or cell_clip <= 0):
            raise ValueError(f"cell_clip must be a positive number or None, got {cell_clip!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        self.impl = _check_impl(impl)
        self.forget_bias = float(forget_bias)
        self.zoneout = _zoneout_pair(zoneout)
        self.layer_norm = bool(layer_norm)
        self.peephole = bool(peephole)
        self.cell_clip = float(cell_clip) if cell_clip is not None else None
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size, **factory))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if peephole:
            for name in ("weight_ci", "weight_cf", "weight_co"):
                setattr(self, name, nn.Parameter(torch.empty(hidden_size, **factory)))
        if layer_norm:
            for part, size in (("ih", 4 * hidden_size), ("hh", 4 * hidden_size), ("c", hidden_size)):
                setattr(self, f"ln_{part}_weight", nn.Parameter(torch.empty(size, **factory)))
                setattr(self, f"ln_{part}_bias", nn.Parameter(torch.empty(size, **factory)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)
        with torch.no_grad():
            if self.layer_norm:
                for part in ("ih", "hh", "c"):
                    getattr(self, f"ln_{part}_weight").fill_(1.0)
                    getattr(self, f"ln_{part}_bias").zero_()
            if self.forget_bias:
                self.bias_ih[self.hidden_size : 2 * self.hidden_size] += self.forget_bias

    def variant(self) -> Variant:
        """This cell's extras; zoneout as probabilities (the forward draws masks in training)."""
        return Variant(
            peephole=torch.stack([self.weight_ci, self.weight_cf, self.weight_co]) if self.peephole else None,
            ln_ih=(self.ln_ih_weight, self.ln_ih_bias) if self.layer_norm else None,
            ln_hh=(self.ln_hh_weight, self.ln_hh_bias) if self.layer_norm else None,
            ln_c=(self.ln_c_weight, self.ln_c_bias) if self.layer_norm else None,
            zoneout_h=self.zoneout[0],
            zoneout_c=self.zoneout[1],
            cell_clip=self.cell_clip,
        )

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        defaults = {"bias": True, "impl": "auto", "forget_bias": 0.0, "zoneout": (0.0, 0.0), "layer_norm": False,
                    "peephole": False, "cell_clip": None}
        for name, default in defaults.items():
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        return s

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            for index, value in enumerate(hx):
                if value.dim() not in (1, 2):
                    raise ValueError(f"LSTMCell: Expected hx[{index}] to be 1D or 2D, got {value.dim()}D instead")
        is_batched = input.dim() == 2
        x = input if is_batched else input.unsqueeze(0)
        if x.dtype != self.weight_ih.dtype:
            raise ValueError(f"LSTMCell: input dtype ({x.dtype}) does not match weight dtype ({self.weight_ih.dtype})")
        if x.device != self.weight_ih.device:
            raise ValueError(f"LSTMCell: input is on {x.device} but the weights are on {self.weight_ih.device}")
        if x.size(1) != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {x.size(1)} expected {self.input_size}")
        if hx is None:
            zeros = x.new_zeros(x.size(0), self.hidden_size)
            hx = (zeros, zeros)
        else:
            hx = hx if is_batched else (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
            for index, value in enumerate(hx):
                expected = (x.size(0), self.hidden_size)
                if tuple(value.shape) != expected:
                    raise RuntimeError(f"hx[{index}] must have shape {expected} to match the input batch, got {tuple(value.shape)}")
                if value.dtype != x.dtype or value.device != x.device:
                    raise ValueError(f"hx[{index}] is {value.dtype} on {value.device} but the input is {x.dtype} on {x.device}")
        variant = self.variant()
        if self.training:  # zoneout: a fresh keep-previous mask per unit for this step
            z_h, z_c = self.zoneout
            variant = variant._replace(
                zoneout_h=bernoulli_mask(hx[0].shape, z_h, device=x.device, dtype=x.dtype) if z_h > 0 else 0.0,
                zoneout_c=bernoulli_mask(hx[1].shape, z_c, device=x.device, dtype=x.dtype) if z_c > 0 else 0.0,
            )
        h, c = lstm_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, impl=self.impl, variant=variant)
        if not is_batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c

