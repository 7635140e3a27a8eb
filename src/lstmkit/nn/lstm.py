"""Drop-in replacements for ``torch.nn.LSTM`` and ``torch.nn.LSTMCell``.

Same constructor arguments and defaults, parameter names and shapes, gate layout (i, f, g, o), initialisation,
input forms, return values and validation errors as torch, so state_dicts load both ways; ``LSTM`` is an
``nn.RNNBase`` and ``LSTMCell`` an ``nn.RNNCellBase`` (why not ``nn.LSTM``: see :class:`LSTM`). The extra keyword
``impl`` picks the computation (see :func:`lstmkit.ops.resolve_impl`).

Letters: T time steps, B batch, I input features, H hidden units, P = proj_size or H, L layers, D directions.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..ops.functional import IMPLS, LayerWeights, lstm, lstm_cell
from ..ops.layer_op import packed_zero_state
from ..ops.masks import bernoulli_mask, check_probability, drop_weight
from ..ops.reference import Variant

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


def _autocast_on(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device (then dtypes may differ: the LSTM runs in autocast's dtype)."""
    return torch.is_autocast_enabled(x.device.type)


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


class _Variants:
    """What :class:`LSTM` and :class:`LSTMCell` share beyond torch: checking and keeping the variant options, the
    variant parameters (registered after torch's, per layer and direction: ``weight_ci{suffix}``, ...,
    ``ln_c_bias{suffix}``), their initialisation, and the :class:`~lstmkit.ops.reference.Variant` the ops take."""

    def _set_variant_options(self, impl, bias, forget_bias, zoneout, layer_norm, peephole, cell_clip) -> None:
        """Check the options both modules have (raising torch-style TypeError / ValueError) and keep them."""
        _check_flags(layer_norm=layer_norm, peephole=peephole)
        _check_finite("forget_bias", forget_bias)
        zoneout_pair = _zoneout_pair(zoneout)
        if cell_clip is not None and (not isinstance(cell_clip, numbers.Number) or cell_clip <= 0):
            raise ValueError(f"cell_clip must be a positive number or None, got {cell_clip!r}")
        if forget_bias and not bias:
            raise ValueError(f"forget_bias={forget_bias} needs bias=True: there is no bias to add it to")
        self.impl = _check_impl(impl)
        self.forget_bias = float(forget_bias)
        self.zoneout = zoneout_pair
        self.layer_norm = bool(layer_norm)
        self.peephole = bool(peephole)
        self.cell_clip = float(cell_clip) if cell_clip is not None else None

    def _register_variants(self, suffixes: list[str], factory: dict) -> None:
        """The variant parameters of each layer and direction (one per suffix), in torch's registration order after
        torch's own, so that a seed gives torch's initial weights; then their initial values."""
        hidden = self.hidden_size
        shapes = {}
        if self.peephole:
            shapes.update(weight_ci=hidden, weight_cf=hidden, weight_co=hidden)
        if self.layer_norm:
            shapes.update(ln_ih_weight=4 * hidden, ln_ih_bias=4 * hidden, ln_hh_weight=4 * hidden,
                          ln_hh_bias=4 * hidden, ln_c_weight=hidden, ln_c_bias=hidden)
        self._variant_names = [{kind: kind + suffix for kind in shapes} for suffix in suffixes]
        for names in self._variant_names:
            for kind, name in names.items():
                setattr(self, name, nn.Parameter(torch.empty(shapes[kind], **factory)))
        self._reset_variants()

    def _reset_variants(self) -> None:
        """The variant parameters from U(-1/sqrt(H), 1/sqrt(H)) in registration order, then :meth:`_finish_variants`."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        for names in self._variant_names:
            for name in names.values():
                nn.init.uniform_(getattr(self, name), -bound, bound)
        self._finish_variants()

    @torch.no_grad()
    def _finish_variants(self) -> None:
        """Layer-norm gains 1 and biases 0 (peepholes keep their uniform draw); ``forget_bias`` added to the
        forget-gate rows of every ``bias_ih``."""
        for names in self._variant_names:
            for kind, name in names.items():
                if kind.startswith("ln_"):
                    getattr(self, name).fill_(1.0 if kind.endswith("weight") else 0.0)
        if self.forget_bias:
            for name, parameter in self.named_parameters(recurse=False):
                if name.startswith("bias_ih"):
                    parameter[self.hidden_size : 2 * self.hidden_size] += self.forget_bias

    def _variant(self, names: dict[str, str]) -> Variant:
        """The :class:`~lstmkit.ops.reference.Variant` of one layer and direction: its variant parameters, the
        cell clip and the zoneout probabilities (masks are drawn by the caller or the op)."""
        get = lambda kind: getattr(self, names[kind])  # noqa: E731
        return Variant(
            peephole=torch.stack([get("weight_ci"), get("weight_cf"), get("weight_co")]) if self.peephole else None,
            ln_ih=(get("ln_ih_weight"), get("ln_ih_bias")) if self.layer_norm else None,
            ln_hh=(get("ln_hh_weight"), get("ln_hh_bias")) if self.layer_norm else None,
            ln_c=(get("ln_c_weight"), get("ln_c_bias")) if self.layer_norm else None,
            zoneout_h=self.zoneout[0],
            zoneout_c=self.zoneout[1],
            cell_clip=self.cell_clip,
        )

    def _extra_repr_options(self, defaults: dict[str, object]) -> str:
        """``, name=value`` for each option that is not at its default, in the order given."""
        return "".join(f", {name}={getattr(self, name)!r}" for name, default in defaults.items()
                       if getattr(self, name) != default)


class LSTM(_Variants, nn.RNNBase):
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
        - lengths (keyword, not in torch): (B,) with padded batched input; the result of packing, running and
          padding back, computed so that torch.compile and torch.export trace it whole (see :meth:`forward`).

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

    Why an ``nn.RNNBase`` and not an ``nn.LSTM``: what matters is that code written for ``nn.LSTM`` runs
    unchanged. Subclassing RNNBase gives torch's own constructor checks, parameter registration and
    initialisation, ``flatten_parameters``, ``check_input``, ``check_hidden_size``, ``get_expected_hidden_size``,
    ``_flat_weights`` (kept in step with the parameters through assignment, ``.to()``, copies and pickling),
    ``all_weights``, ``mode`` and ``isinstance(m, nn.RNNBase)``; ``check_forward_args``,
    ``get_expected_cell_size`` and ``permute_hidden`` are nn.LSTM's, written here. Not subclassing ``nn.LSTM``
    is deliberate: torch.compile (dynamo) refuses to trace any ``nn.LSTM`` instance ("Dynamo does not support
    RNN, GRU, or LSTM"), so every model holding one would break the graph; and code that special-cases
    ``nn.LSTM`` to call torch's kernel with ``_flat_weights`` would silently drop the variants. Variant parameters
    register after torch's; weight dropout hands a dropped copy of ``weight_hh`` to the op each call, so the
    registered parameters (and ``_flat_weights``) are never replaced.

    Contract details, each tested against torch (tests/nn/test_torch_contract.py): double backward
    (``create_graph=True``) and batched gradients (``is_grads_batched=True``) work on every impl; an empty batch
    returns torch's shapes and zero time steps raise torch's RuntimeError; under autocast every impl computes in
    autocast's dtype, as torch does for padded input; ``repr`` is torch's, then the options torch lacks.

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
        # argument types torch's RNNBase lets through (bool sizes) refused first, in torch's words (issue 14)
        _check_sizes(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, proj_size=proj_size)
        # torch's own checks, parameters (same names, shapes and registration order) and RNNBase's bookkeeping
        # (_flat_weights, _all_weights, mode); RNNBase.__init__ ends with reset_parameters(), which initialises
        # torch's weights exactly as torch.nn.LSTM does while the variants are not registered yet
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            device=device, dtype=dtype,
        )
        _check_flags(bidirectional=bidirectional)
        check_probability(weight_dropout, "weight_dropout", allow_one=False)
        check_probability(recurrent_dropout, "recurrent_dropout", allow_one=False)
        self._set_variant_options(impl, bias, forget_bias, zoneout, layer_norm, peephole, cell_clip)
        self.weight_dropout = float(weight_dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        # per layer and direction: the names of (w_ih, w_hh, b_ih, b_hh, w_hr), None where absent
        self._layer_names = [
            tuple(next((n for n in names if n.startswith(kind + "_l")), None) for kind in LAYER_KINDS)
            for names in self._all_weights
        ]
        # the variants' parameters come after all of torch's, so torch's weights get the same initial values
        directions = ("", "_reverse") if bidirectional else ("",)
        suffixes = [f"_l{layer}{direction}" for layer in range(num_layers) for direction in directions]
        self._register_variants(suffixes, {"device": device, "dtype": dtype})

    def reset_parameters(self) -> None:
        """Every parameter from U(-1/sqrt(H), 1/sqrt(H)), in registration order (as torch does: torch's weights
        first, then the variants'); layer-norm gains 1 and biases 0; then ``forget_bias`` is added to the
        forget-gate rows of each ``bias_ih``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            nn.init.uniform_(getattr(self, name), -bound, bound)
        if "_variant_names" in self.__dict__:  # not while RNNBase.__init__ calls this, before the variants exist
            self._reset_variants()

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
        return [self._variant(names) for names in self._variant_names]

    def extra_repr(self) -> str:
        """torch.nn.LSTM's text for torch's arguments (same order and formatting), then the options it lacks."""
        return super().extra_repr() + self._extra_repr_options({
            "impl": "auto", "weight_dropout": 0.0, "forget_bias": 0.0, "recurrent_dropout": 0.0,
            "zoneout": (0.0, 0.0), "layer_norm": False, "peephole": False, "cell_clip": None,
        })

    # ---- torch.nn.LSTM's methods beyond RNNBase's, with its semantics: h and c as a pair

    def get_expected_cell_size(self, input: Tensor, batch_sizes: Tensor | None) -> tuple[int, int, int]:
        """(L * D, B, H): the shape c_0 must have for this input (torch.nn.LSTM's method)."""
        batch = int(batch_sizes[0]) if batch_sizes is not None else input.size(0 if self.batch_first else 1)
        return (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)

    def check_forward_args(self, input: Tensor, hidden: tuple[Tensor, Tensor], batch_sizes: Tensor | None) -> None:
        """torch.nn.LSTM's checks of a forward call: the input (RNNBase.check_input), then h_0's and c_0's sizes."""
        self.check_input(input, batch_sizes)
        self.check_hidden_size(hidden[0], self.get_expected_hidden_size(input, batch_sizes), "Expected hidden[0] size {}, got {}")
        self.check_hidden_size(hidden[1], self.get_expected_cell_size(input, batch_sizes), "Expected hidden[1] size {}, got {}")

    def permute_hidden(self, hx: tuple[Tensor, Tensor], permutation: Tensor | None) -> tuple[Tensor, Tensor]:
        """Reorder the batch of both states (torch.nn.LSTM's method; used for unsorted PackedSequences)."""
        if permutation is None:
            return hx
        return _apply_permutation(hx[0], permutation), _apply_permutation(hx[1], permutation)

    def _check_packed(self, x: Tensor) -> None:
        """torch leaves packed input to its kernel, whose RuntimeErrors speak of matrices; same type, clearer text."""
        weight = self._flat_weights[0]
        if x.dim() != 2:
            raise RuntimeError(f"input must have 2 dimensions, got {x.dim()}")
        if x.size(-1) != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got {x.size(-1)}")
        if x.dtype != weight.dtype and not _autocast_on(x):
            raise RuntimeError(
                f"RNN input dtype ({x.dtype}) does not match weight dtype ({weight.dtype}). "
                f"Convert input: input.to({weight.dtype}), or convert model: model.to({x.dtype})"
            )

    def _check_devices_and_dtypes(self, x: Tensor, hx: tuple[Tensor, Tensor]) -> None:
        """What torch's kernel checks after the Python checks, as RuntimeErrors; the states' messages name them."""
        weight = self._flat_weights[0]
        if x.device != weight.device:
            raise RuntimeError(
                "Input and parameter tensors are not at the same device, "
                f"found input tensor at {x.device} and parameter tensor at {weight.device}"
            )
        for name, state in (("hidden[0]", hx[0]), ("hidden[1]", hx[1])):
            if state.device != x.device:
                raise RuntimeError(
                    "Input and hidden tensors are not at the same device, "
                    f"found input tensor at {x.device} and hidden tensor at {state.device}"
                )
            if state.dtype != x.dtype and not _autocast_on(x):
                raise RuntimeError(f"{name} has dtype {state.dtype} but the input has dtype {x.dtype}")

    def _check_lengths(self, input, lengths: Tensor) -> None:
        if isinstance(input, PackedSequence) or input.dim() != 3:
            kind = "a PackedSequence" if isinstance(input, PackedSequence) else f"{input.dim()}-D input"
            raise ValueError(f"lengths needs padded batched input (T, B, I), or (B, T, I) with batch_first; got {kind}")
        steps, batch = (input.size(1), input.size(0)) if self.batch_first else (input.size(0), input.size(1))
        if not isinstance(lengths, Tensor) or lengths.dim() != 1 or lengths.size(0) != batch or lengths.is_floating_point():
            got = f"{lengths.dtype} of shape {tuple(lengths.shape)}" if isinstance(lengths, Tensor) else type(lengths).__name__
            raise ValueError(f"lengths must be an integer tensor of shape ({batch},), one per sequence, got {got}")
        if not torch.compiler.is_compiling() and batch and not bool(((lengths >= 1) & (lengths <= steps)).all()):
            raise ValueError(f"lengths must be in [1, {steps}] (the input has {steps} steps), got {lengths.tolist()}")

    @staticmethod
    def _packed_batch(input: PackedSequence, hx) -> int | None:
        """B of packed input: ``batch_sizes[0]`` in eager code. Under torch.compile / torch.export a value of
        ``batch_sizes`` read in Python is a graph break (an error in export), so B comes from a shape:
        ``len(sorted_indices)`` (``enforce_sorted=False``) or h_0's; None when neither exists (a sorted
        PackedSequence without h_0: then the zero states come from the operator ``lstmkit::packed_zero_state``,
        whose B is a symbolic size the fused operator carries through)."""
        if not torch.compiler.is_compiling():
            return int(input.batch_sizes[0])
        if input.sorted_indices is not None:
            return input.sorted_indices.numel()
        return hx[0].size(-2) if hx is not None else None

    def _forward_packed_compiling(self, input: PackedSequence, hx):
        """A PackedSequence under torch.compile / torch.export with ``impl="reference"`` (or ``"native"``, which
        runs the reference equations there: :func:`lstmkit.ops.functional._compiled_impl`), whose packed loop needs
        every value of ``batch_sizes`` in Python: unpacked to a padded (T, B) batch with gathers whose shapes come
        from shapes only, run with ``lengths`` (states frozen past each length), and gathered back into packed
        rows. The result of packed input; random masks (training) are drawn in the padded layout, so they are
        not eager's. The fused operator runs packed rows itself (:meth:`forward`)."""
        x, batch_sizes, sorted_indices, unsorted_indices = input
        self._check_packed(x)
        batch = self._packed_batch(input, hx)
        if batch is None:  # the zero states carry B, a symbolic size, for the gathers below
            layers = self.num_layers * (2 if self.bidirectional else 1)
            hx = packed_zero_state(batch_sizes, x, layers, self.proj_size or self.hidden_size, self.hidden_size)
            batch = hx[0].size(1)
        sizes = batch_sizes.to(x.device)  # (T,)
        offsets = torch.cumsum(sizes, 0) - sizes  # (T,) first row of each step
        column = torch.arange(batch, device=x.device)
        valid = column[None, :] < sizes[:, None]  # (T, B) which sequences run at each step
        rows = (offsets[:, None] + column[None, :]).masked_fill(~valid, 0)  # (T, B) packed row of each (t, b)
        padded = x[rows] * valid.unsqueeze(-1).to(x.dtype)  # (T, B, I), in the packed (sorted) batch order
        lengths = valid.sum(0)  # (B,)
        if hx is not None:
            hx = self.permute_hidden(hx, sorted_indices)
        out, (h_n, c_n) = self.forward(padded.transpose(0, 1) if self.batch_first else padded, hx, lengths=lengths)
        out = out.transpose(0, 1) if self.batch_first else out  # (T, B, D * P)
        step = torch.repeat_interleave(torch.arange(sizes.numel(), device=x.device), sizes, output_size=x.size(0))
        output = out[step, torch.arange(x.size(0), device=x.device) - offsets[step]]  # (N, D * P)
        return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), self.permute_hidden(
            (h_n, c_n), unsorted_indices
        )

    def forward(self, input, hx: tuple[Tensor, Tensor] | None = None, *, lengths: Tensor | None = None):
        """Inputs and outputs as in the class docstring. ``lengths`` (B,) with padded batched input: the result of packing it
        (``enforce_sorted=False``), running, and padding back with zeros to the input's length, computed on the
        padded tensor with each sequence's state frozen past its length (:func:`lstmkit.ops.lstm`). No shape
        depends on the data, so torch.compile and torch.export trace it whole, where ``pack_padded_sequence`` is
        a graph break (dynamo does not trace it; a PackedSequence made outside the compiled code traces whole,
        see :meth:`_packed_batch`). Eager and compiled code draw the same random masks. ``impl="native"`` packs
        instead in eager code (torch's kernel has no frozen steps); compiled or exported it runs torch's equations
        with frozen steps (:func:`lstmkit.ops.functional._compiled_impl`)."""
        if lengths is not None:
            self._check_lengths(input, lengths)
            if self.impl == "native" and not torch.compiler.is_compiling():
                steps = input.size(1 if self.batch_first else 0)
                packed = pack_padded_sequence(input, lengths.cpu(), batch_first=self.batch_first, enforce_sorted=False)
                output, state = self.forward(packed, hx)
                return pad_packed_sequence(output, batch_first=self.batch_first, total_length=steps)[0], state
        if isinstance(input, PackedSequence) and torch.compiler.is_compiling() and self.impl in ("native", "reference"):
            return self._forward_packed_compiling(input, hx)
        directions = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        packed = isinstance(input, PackedSequence)
        sorted_indices = unsorted_indices = batch_sizes = None
        is_batched = True
        if packed:
            x, batch_sizes, sorted_indices, unsorted_indices = input
            self._check_packed(x)
            batch = self._packed_batch(input, hx)
        else:
            x = input
            if x.dim() not in (2, 3):
                raise ValueError(f"LSTM: Expected input to be 2D or 3D, got {x.dim()}D instead")
            is_batched = x.dim() == 3
            if not is_batched:
                x = x.unsqueeze(0 if self.batch_first else 1)
            batch = x.size(0 if self.batch_first else 1)
        layers = self.num_layers * directions
        if hx is None:
            if batch is None:  # compiling a sorted PackedSequence: B is a value, which only an operator may read
                hx = packed_zero_state(batch_sizes, x, layers, real_hidden, self.hidden_size)
            else:
                hx = (
                    torch.zeros(layers, batch, real_hidden, dtype=x.dtype, device=x.device),
                    torch.zeros(layers, batch, self.hidden_size, dtype=x.dtype, device=x.device),
                )
            if not packed:
                self.check_forward_args(x, hx, None)
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
            if packed:  # sizes checked before the permutation, so a wrong batch is named, not an index error
                self.check_hidden_size(hx[0], (layers, batch, real_hidden), "Expected hidden[0] size {}, got {}")
                self.check_hidden_size(hx[1], (layers, batch, self.hidden_size), "Expected hidden[1] size {}, got {}")
            else:
                self.check_forward_args(x, hx, None)
            hx = self.permute_hidden(hx, sorted_indices)
        self._check_devices_and_dtypes(x, hx)
        if not packed and x.size(1 if self.batch_first else 0) == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")

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
            lengths=lengths,
        )
        if packed:
            return PackedSequence(output, batch_sizes, sorted_indices, unsorted_indices), self.permute_hidden(
                (h_n, c_n), unsorted_indices
            )
        if not is_batched:
            output = output.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), c_n.squeeze(1)
        return output, (h_n, c_n)


class LSTMCell(_Variants, nn.RNNCellBase):
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

    An ``nn.RNNCellBase``, like torch's cell: the same parameters and initialisation (``hidden_size=0`` allowed),
    and torch's errors in its order and words on every impl (a hidden or batch size that does not match, a
    dtype that does not match the weights, a non-tuple ``hx``). ``forward`` reads ``self.training`` only for
    zoneout.

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
        _check_sizes(input_size=input_size, hidden_size=hidden_size)  # bool sizes refused (issue 14)
        # torch's parameters (names, shapes, order, initialisation). As torch's cell: sizes of 0 are allowed, and
        # bias is not type-checked (it is printed as given), so neither is refused here (issue 12)
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)
        self._set_variant_options(impl, bias, forget_bias, zoneout, layer_norm, peephole, cell_clip)
        self._register_variants([""], {"device": device, "dtype": dtype})  # one cell: the names have no suffix

    def reset_parameters(self) -> None:
        """torch's initialisation, U(-1/sqrt(H), 1/sqrt(H)) for every parameter in registration order; layer-norm
        gains 1 and biases 0; ``forget_bias`` added to the forget-gate rows of ``bias_ih``."""
        super().reset_parameters()  # every parameter, the variants' too, in registration order
        if "_variant_names" in self.__dict__:  # not while RNNCellBase.__init__ calls this
            self._finish_variants()

    def variant(self) -> Variant:
        """This cell's extras; zoneout as probabilities (the forward draws masks in training)."""
        return self._variant(self._variant_names[0])

    def extra_repr(self) -> str:
        """torch.nn.LSTMCell's text (``bias`` printed as torch prints it), then the options it lacks."""
        return super().extra_repr() + self._extra_repr_options({
            "impl": "auto", "forget_bias": 0.0, "zoneout": (0.0, 0.0), "layer_norm": False, "peephole": False,
            "cell_clip": None,
        })

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        # torch.nn.LSTMCell's steps in its order; the size and dtype checks of torch's kernel follow in lstm_cell
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell: Expected input to be 1D or 2D, got {input.dim()}D instead")
        if hx is not None:
            for index, value in enumerate(hx):
                if value.dim() not in (1, 2):
                    raise ValueError(f"LSTMCell: Expected hx[{index}] to be 1D or 2D, got {value.dim()}D instead")
        is_batched = input.dim() == 2
        x = input if is_batched else input.unsqueeze(0)
        if hx is None:
            zeros = torch.zeros(x.size(0), self.hidden_size, dtype=x.dtype, device=x.device)
            hx = (zeros, zeros)
        elif not is_batched:
            hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
        variant = self.variant()
        # zoneout draws a fresh keep-previous mask per unit for this step in training; nothing else reads
        # self.training, so a cell without variants runs even where that attribute is missing, as torch's does
        z_h, z_c = self.zoneout
        if (z_h > 0 or z_c > 0) and self.training:
            variant = variant._replace(
                zoneout_h=bernoulli_mask(hx[0].shape, z_h, device=x.device, dtype=x.dtype) if z_h > 0 else 0.0,
                zoneout_c=bernoulli_mask(hx[1].shape, z_c, device=x.device, dtype=x.dtype) if z_c > 0 else 0.0,
            )
        h, c = lstm_cell(x, hx, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, impl=self.impl, variant=variant)
        if not is_batched:
            h, c = h.squeeze(0), c.squeeze(0)
        return h, c
