"""Checks and dispatch: one entry point per shape of work, three ways to compute it.

- ``"native"``: torch's own kernel through ``torch._VF.lstm`` (oneDNN on CPU, cuDNN on GPU).
- ``"fused"``: the operator ``lstmkit::lstm_layer`` (:mod:`lstmkit.ops.layer_op`): a C++ kernel, or its readable
  Python twin in :mod:`lstmkit.ops.fused`, with a hand-written backward (:func:`lstmkit.ops.fused_backend`).
- ``"reference"``: :func:`lstmkit.ops.reference.lstm_layer_ref`, the equations with autograd.
- ``"auto"``: whichever is fastest for the configuration (see :func:`resolve_impl`).

Letters as in :mod:`lstmkit.ops.reference` (T, B, I, H, P, N).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .layer_op import fused_backend, lstm_layer_fused
from .masks import bernoulli_mask, dropout_mask
from .reference import NO_VARIANT, Variant, lstm_cell_ref, lstm_layer_ref, lstm_layer_scan

__all__ = ["IMPLS", "LayerWeights", "lstm", "lstm_cell", "lstm_layer", "resolve_impl"]

IMPLS = ("auto", "native", "fused", "reference")


class LayerWeights(NamedTuple):
    """The weights of one layer in one direction, in torch's order; absent ones are None."""

    w_ih: Tensor  # (4H, I)
    w_hh: Tensor  # (4H, P)
    b_ih: Tensor | None = None  # (4H,)
    b_hh: Tensor | None = None  # (4H,)
    w_hr: Tensor | None = None  # (P, H)


def resolve_impl(
    impl: str,
    *,
    device: torch.device,
    dtype: torch.dtype,
    packed: bool,
    projected: bool,
    variant: str = "",
    hidden: int | None = None,
    batch: int | None = None,
    needs_grad: bool = True,
    steps: int | None = None,
) -> str:
    """Turn ``impl="auto"`` into a concrete implementation; check the others.

    ``variant`` names the active options torch's kernel cannot compute (empty when none): then auto takes the
    fused path, or the reference one for a single time step (``steps == 1``: an ``LSTMCell`` call, or a decoder
    stepping the module), where the equations with autograd beat the fused layer's set-up (benchmarks/bench_auto.py
    --cells; RESULTS.md, "lstmkit.LSTMCell with a variant"), and ``"native"`` is an error. On CUDA torch's cuDNN kernel handles every plain configuration, so auto
    takes it. On CPU torch's fused oneDNN kernel serves padded float32/bfloat16 input without projection and is the
    fastest thing there. For PackedSequence, ``proj_size > 0`` and float64 torch falls back to a per-step loop in
    C++, and the fused path is faster except where each step holds too little work to hide our per-step Python
    (see :func:`_fallback_beats_fused`; ``hidden``, ``batch`` and ``needs_grad`` describe the call, and without
    ``hidden`` and ``batch`` auto takes the fused path). benchmarks/RESULTS.md has the figures.

    ``packed`` means sequences of different lengths: torch runs a PackedSequence whose sequences all have the same
    length (``batch_sizes`` constant, e.g. a single sequence) on oneDNN like padded input, so callers pass
    ``packed=False`` for it (see :func:`_ragged`).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(map(repr, IMPLS))}, got {impl!r}")
    if impl == "auto" and torch.compiler.is_exporting():
        # torch.export: torch's kernel and the reference loop unroll over time and fix T (pytorch#91439); the
        # operator lstmkit::lstm_layer is one node whose fake kernel keeps T and B symbolic
        return "fused"
    if variant:
        if impl == "native":
            raise ValueError(f"impl='native' (torch's kernel) cannot compute {variant}; use impl='fused' or 'reference'")
        if impl != "auto":
            return impl
        return "reference" if steps == 1 else "fused"
    if impl != "auto":
        return impl
    if device.type != "cpu":
        return "native"
    if packed or projected or dtype not in (torch.float32, torch.bfloat16, torch.float16):
        if hidden is not None and batch is not None and _fallback_beats_fused(
            hidden=hidden, batch=batch, projected=projected, dtype=dtype, needs_grad=needs_grad
        ):
            return "native"
        return "fused"
    return "native"


def _fallback_beats_fused(
    *, hidden: int, batch: int, projected: bool, dtype: torch.dtype, needs_grad: bool, kernel: str | None = None
) -> bool:
    """Where torch's per-step fallback (packed input, projection, float64) is faster than the fused path on CPU.

    ``kernel`` is the fused operator's kernel (:func:`lstmkit.ops.fused_backend`, asked when None). In training (a
    backward will follow) the fused path wins or ties everywhere measured, on either kernel. Without grad:
    - the C++ kernel beats torch's loop at every batch of more than one sequence in float32; torch's loop keeps
      one projected sequence above H = 512 (at H = 512 the kernel's one gate product a step, session 9, made the
      fused path 0.84x), and float64 batches of more than four sequences (our float64 activations are scalar library
      calls; for one to four sequences the fused loop's lower overhead per step still wins);
    - the Python kernel pays ~10 Python-dispatched ops per step: one sequence, or H < 384 (packed) / H < 512
      (projection, float64), go to torch's loop; a projected H >= 1024 step is big enough even for one sequence.
    The measurements behind these bounds: benchmarks/RESULTS.md, "auto's choice where torch leaves oneDNN".
    """
    if needs_grad:
        return False
    if (kernel or fused_backend()) == "cpp":
        if dtype == torch.float64:
            return batch > 4
        return batch == 1 and projected and hidden > 512
    if batch == 1:
        return not (projected and hidden >= 1024)
    return hidden < (512 if projected or dtype == torch.float64 else 384)


def _compiled_impl(impl: str, *, native_kernel: bool = True) -> str:
    """The impl that torch.compile and torch.export can trace (``impl`` itself in eager code).

    - ``"auto"`` is the fused operator: one graph node whose fake kernel keeps T and B symbolic. torch's kernel
      is decomposed into a loop unrolled at one length, so every new sequence length (a language model's
      variable windows) would compile again, until dynamo gives up and runs eagerly.
    - ``"native"`` is torch's kernel under torch.compile where AOTAutograd can trace it: padded input with no
      backward to follow (``native_kernel``). Elsewhere it is torch's equations written out, the reference layer
      without a variant (the same math: gates i, f, g, o; c' = f c + i g; h' = o tanh(c'), projected by w_hr):
      in training AOTAutograd fails on torch's CPU kernel ("tensors_saved_with_vc_check to be Tensors", as for
      torch.nn.LSTM), the kernel has no frozen steps for ``lengths=`` and reads packed ``batch_sizes`` in
      Python, and torch.export unrolls it at one length (pytorch#91439), where the reference loop runs as
      torch's scan (:func:`_reference_layer`).
    """
    if not torch.compiler.is_compiling():
        return impl
    if impl == "auto":
        return "fused"
    if impl == "native" and (torch.compiler.is_exporting() or not native_kernel):
        return "reference"
    return impl


def _reference_layer(batch_sizes) -> Callable[..., tuple[Tensor, tuple[Tensor, Tensor]]]:
    """The reference layer: under torch.export, padded input loops through torch's scan, so T stays symbolic
    (:func:`~lstmkit.ops.reference.lstm_layer_scan`); elsewhere the Python loop."""
    if torch.compiler.is_exporting() and batch_sizes is None:
        return lstm_layer_scan
    return lstm_layer_ref


def _ragged(batch_sizes: Tensor | Sequence[int] | None) -> bool:
    """Whether packed input has sequences of different lengths (torch leaves oneDNN only for those)."""
    if batch_sizes is None:
        return False
    if torch.compiler.is_compiling():  # reading sizes or values would fix them; impl is no longer "auto" there
        return True
    if len(batch_sizes) == 0:
        return False
    if isinstance(batch_sizes, Tensor):
        return bool((batch_sizes != batch_sizes[0]).any())
    return any(s != batch_sizes[0] for s in batch_sizes)


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd will record this call: grad mode on and some input requiring grad."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ---------------------------------------------------------------------------------------------------- validation


def _check_tensor(name: str, tensor: Tensor | None, shape: tuple[int, ...], like: Tensor) -> None:
    if tensor is None:
        return
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(tensor.shape)}")
    if tensor.dtype != like.dtype:
        raise ValueError(f"{name} has dtype {tensor.dtype} but the input has dtype {like.dtype}")
    if tensor.device != like.device:
        raise ValueError(f"{name} is on {tensor.device} but the input is on {like.device}")


def _check_layer_args(x: Tensor, hx, weights: LayerWeights, batch_sizes) -> tuple[int, int, int]:
    """Validate one layer's arguments; returns (I, H, P)."""
    if batch_sizes is None:
        if x.dim() != 3:
            raise ValueError(f"x must be 3-D (T, B, I) without batch_sizes, got {x.dim()}-D of shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"x must have at least one time step, got shape {tuple(x.shape)}")
        batch = x.shape[1]
    else:
        if x.dim() != 2:
            raise ValueError(f"x must be 2-D packed data (N, I) with batch_sizes, got shape {tuple(x.shape)}")
        sizes = [int(s) for s in batch_sizes]
        if not sizes or sizes[0] <= 0 or any(b > a for a, b in zip(sizes, sizes[1:])) or min(sizes) <= 0:
            raise ValueError(f"batch_sizes must be positive and non-increasing, got {sizes}")
        if sum(sizes) != x.shape[0]:
            raise ValueError(f"batch_sizes sum to {sum(sizes)} but x has {x.shape[0]} rows")
        batch = sizes[0]
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating point tensor, got dtype {x.dtype}")
    gate_rows, input_size = weights.w_ih.shape
    if gate_rows % 4:
        raise ValueError(f"w_ih must have 4 * hidden_size rows, got shape {tuple(weights.w_ih.shape)}")
    hidden = gate_rows // 4
    if x.shape[-1] != input_size:
        raise ValueError(f"x has {x.shape[-1]} features but w_ih expects {input_size} (w_ih shape {tuple(weights.w_ih.shape)})")
    proj = weights.w_hr.shape[0] if weights.w_hr is not None else hidden
    _check_tensor("w_ih", weights.w_ih, (4 * hidden, input_size), x)
    _check_tensor("w_hh", weights.w_hh, (4 * hidden, proj), x)
    _check_tensor("b_ih", weights.b_ih, (4 * hidden,), x)
    _check_tensor("b_hh", weights.b_hh, (4 * hidden,), x)
    _check_tensor("w_hr", weights.w_hr, (proj, hidden), x)
    if hx is not None:
        _check_tensor("h0", hx[0], (batch, proj), x)
        _check_tensor("c0", hx[1], (batch, hidden), x)
    return input_size, hidden, proj


# ---------------------------------------------------------------------------------------------------- one layer


@lru_cache(maxsize=256)
def _time_reversal(sizes: tuple[int, ...]) -> Tensor:
    """Permutation of packed rows that reverses every sequence in time (its own inverse)."""
    offsets = [0]
    for s in sizes[:-1]:
        offsets.append(offsets[-1] + s)
    lengths = [sum(1 for s in sizes if s > b) for b in range(sizes[0])]
    index = [0] * sum(sizes)
    for t, (start, size) in enumerate(zip(offsets, sizes)):
        for b in range(size):
            index[start + b] = offsets[lengths[b] - 1 - t] + b
    return torch.tensor(index)


def _layer_native(x: Tensor, hx, weights: LayerWeights, reverse: bool, batch_sizes) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One layer-direction through torch's kernel. A reverse direction runs forward over time-reversed sequences."""
    w = [weights.w_ih, weights.w_hh]
    has_bias = weights.b_ih is not None or weights.b_hh is not None
    if has_bias:
        w += [b if b is not None else torch.zeros_like(weights.w_ih[:, 0]) for b in (weights.b_ih, weights.b_hh)]
    if weights.w_hr is not None:
        w.append(weights.w_hr)
    state = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))  # (1, B, P), (1, B, H)
    if batch_sizes is None:
        source = x.flip(0) if reverse else x
        out, h_n, c_n = torch._VF.lstm(source, state, w, has_bias, 1, 0.0, False, False, False)
        out = out.flip(0) if reverse else out
    else:
        sizes = torch.as_tensor(batch_sizes, dtype=torch.int64, device="cpu")
        index = _time_reversal(tuple(int(s) for s in sizes)).to(x.device) if reverse else None
        source = x.index_select(0, index) if reverse else x
        out, h_n, c_n = torch._VF.lstm(source, sizes, state, w, has_bias, 1, 0.0, False, False)
        out = out.index_select(0, index) if reverse else out
    return out, (h_n[0], c_n[0])


def lstm_layer(
    x: Tensor,
    hx: tuple[Tensor, Tensor] | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    *,
    reverse: bool = False,
    batch_sizes: Tensor | Sequence[int] | None = None,
    impl: str = "auto",
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LSTM layer in one direction.

    Args:
        x: (T, B, I) time-major input, or (N, I) packed data when ``batch_sizes`` is given (PackedSequence layout).
        hx: ``(h0 (B, P), c0 (B, H))``, or None for zeros.
        w_ih, w_hh, b_ih, b_hh, w_hr: torch's weights for this layer and direction (biases and w_hr optional).
        reverse: process the sequences from their last step to their first.
        batch_sizes: sequences running at each step (non-increasing), as in a PackedSequence.
        impl: ``"auto"``, ``"native"``, ``"fused"`` or ``"reference"``.
        variant: optional extras (:class:`~lstmkit.ops.reference.Variant`), masks already drawn.

    Returns:
        ``output`` ((T, B, P) or (N, P)) and ``(h_n (B, P), c_n (B, H))``.
    """
    weights = LayerWeights(w_ih, w_hh, b_ih, b_hh, w_hr)
    _, hidden, proj = _check_layer_args(x, hx, weights, batch_sizes)
    if hx is None:
        batch = x.shape[1] if batch_sizes is None else int(batch_sizes[0])
        hx = (x.new_zeros(batch, proj), x.new_zeros(batch, hidden))
    needs_grad = _needs_grad(x, *hx, *weights)
    impl = _compiled_impl(impl, native_kernel=batch_sizes is None and not needs_grad)
    which = resolve_impl(
        impl, device=x.device, dtype=x.dtype, packed=_ragged(batch_sizes), projected=w_hr is not None,
        variant=describe_variant(variant), hidden=hidden, batch=hx[0].shape[0], needs_grad=needs_grad,
    )
    if which == "native":
        return _layer_native(x, hx, weights, reverse, batch_sizes)
    layer = lstm_layer_fused if which == "fused" and not _empty(hx) else _reference_layer(batch_sizes)
    return layer(x, hx, *weights, reverse=reverse, batch_sizes=batch_sizes, variant=variant)


# ---------------------------------------------------------------------------------------------------- a stack


def lstm(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    weights: Sequence[LayerWeights],
    *,
    num_layers: int,
    bidirectional: bool = False,
    dropout: float = 0.0,
    training: bool = False,
    batch_first: bool = False,
    batch_sizes: Tensor | None = None,
    impl: str = "auto",
    variants: Sequence[Variant] | None = None,
    recurrent_dropout: float = 0.0,
    lengths: Tensor | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """A stack of LSTM layers, as ``torch.nn.LSTM`` computes it (arguments already validated by the module).

    Args:
        x: (T, B, I) or (B, T, I) with ``batch_first``; (N, I) packed data when ``batch_sizes`` is given.
        hx: ``(h0 (L * D, B, P), c0 (L * D, B, H))`` with L layers and D directions, layer-major.
        weights: one :class:`LayerWeights` per layer and direction, in the same order.
        dropout: probability of dropping each output of every layer but the last, in training.
        variants: one :class:`~lstmkit.ops.reference.Variant` per layer and direction (weights, cell clip, and
            zoneout as probabilities); in training the zoneout masks are drawn here, per layer and direction.
        recurrent_dropout: in training, one mask per sequence, layer and direction on the h fed back.
        lengths: (B,) for padded ``x``: sequence b has ``lengths[b]`` steps. The result equals packing, running and
            padding back with zeros, computed on the padded tensor (static shapes: what torch.compile and export
            need): past its length each sequence's state is frozen, by a zoneout keep-mask of 1 there (lerp
            with weight 1 returns the previous state exactly, and passes no gradient to the new one), so the
            reverse direction starts at each sequence's own last step from h_0, and h_n, c_n are each sequence's
            state after its last step. Not with ``batch_sizes``; ``impl="native"`` refuses it in eager code (the
            module packs instead) and runs torch's equations with it under torch.compile and torch.export
            (:func:`_compiled_impl`).

    Returns:
        ``output`` in the layout of ``x`` with P * D features, and ``(h_n, c_n)`` shaped like ``hx``.
    """
    if _autocast_dtype(x) is not None and not _autocast_by_torch(x, impl, variants, recurrent_dropout, lengths):
        return _autocast_stack(
            x, hx, weights, num_layers=num_layers, bidirectional=bidirectional, dropout=dropout, training=training,
            batch_first=batch_first, batch_sizes=batch_sizes, impl=impl, variants=variants,
            recurrent_dropout=recurrent_dropout, lengths=lengths,
        )
    if lengths is not None and batch_sizes is not None:
        raise ValueError("lengths is for padded input; packed input already carries its batch_sizes")
    needs_grad = _needs_grad(x, *hx, *(w for layer in weights for w in layer))
    impl = _compiled_impl(impl, native_kernel=batch_sizes is None and lengths is None and not needs_grad)
    directions = 2 if bidirectional else 1
    projected = weights[0].w_hr is not None
    variants = list(variants) if variants is not None else [NO_VARIANT] * len(weights)
    active = describe_variant(variants[0], recurrent_dropout)
    if lengths is not None:
        active = ", ".join(filter(None, (active, "lengths")))
    which = resolve_impl(
        impl, device=x.device, dtype=x.dtype, packed=_ragged(batch_sizes), projected=projected, variant=active,
        hidden=weights[0].w_hh.shape[0] // 4, batch=hx[0].shape[1], needs_grad=needs_grad,
        steps=batch_sizes.shape[0] if batch_sizes is not None else x.shape[1 if batch_first else 0],  # T, not fixed
    )
    if which == "native":  # the whole stack in one call, exactly torch.nn.LSTM's
        flat = [w for layer in weights for w in layer if w is not None]
        has_bias = weights[0].b_ih is not None
        if batch_sizes is None:
            out, h_n, c_n = torch._VF.lstm(x, hx, flat, has_bias, num_layers, dropout, training, bidirectional, batch_first)
        else:
            out, h_n, c_n = torch._VF.lstm(x, batch_sizes, hx, flat, has_bias, num_layers, dropout, training, bidirectional)
        return out, (h_n, c_n)

    fused = which == "fused" and not _empty((hx[0][0], hx[1][0]))
    layer_fn = lstm_layer_fused if fused else _reference_layer(batch_sizes)
    if batch_sizes is None or (which == "fused" and torch.compiler.is_compiling()):
        sizes = batch_sizes  # the operator takes the tensor: its values are not read while tracing
    else:
        sizes = tuple(int(s) for s in batch_sizes)
    layer_input = x.transpose(0, 1) if (batch_first and batch_sizes is None) else x  # time-major
    padding = None
    if lengths is not None:  # (T, B, 1) True past each sequence's end
        steps = torch.arange(layer_input.shape[0], device=x.device)
        padding = (steps[:, None] >= lengths.to(x.device)[None, :]).unsqueeze(-1)
    h_n: list[Tensor] = []
    c_n: list[Tensor] = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            k = layer * directions + direction
            state = (hx[0][k], hx[1][k])
            variant = _draw_masks(variants[k], recurrent_dropout, training, layer_input, state) if active else NO_VARIANT
            if padding is not None:
                variant = _freeze_padding(variant, padding, state)
            out, (h, c) = layer_fn(
                layer_input, state, *weights[k], reverse=direction == 1, batch_sizes=sizes, variant=variant
            )
            outputs.append(out)
            h_n.append(h)
            c_n.append(c)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
        if dropout > 0 and training and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
    if padding is not None:
        layer_input = layer_input.masked_fill(padding, 0.0)  # zeros past the ends, as pad_packed_sequence gives
    output = layer_input.transpose(0, 1) if (batch_first and batch_sizes is None) else layer_input
    return output, (torch.stack(h_n), torch.stack(c_n))


def _freeze_padding(variant: Variant, padding: Tensor, state: tuple[Tensor, Tensor]) -> Variant:
    """Zoneout keep-masks (T, B, P) / (T, B, H) that are 1 on padded steps: the drawn masks, or zoneout's eval
    probability (0 without zoneout), elsewhere."""
    h0, c0 = state

    def keep(zone, size: int) -> Tensor:
        shape = (*padding.shape[:2], size)
        base = zone if isinstance(zone, Tensor) else torch.full((), float(zone), dtype=h0.dtype, device=h0.device)
        return torch.where(padding, torch.ones((), dtype=h0.dtype, device=h0.device), base).expand(shape)

    return variant._replace(zoneout_h=keep(variant.zoneout_h, h0.shape[-1]), zoneout_c=keep(variant.zoneout_c, c0.shape[-1]))


def _empty(hx: tuple[Tensor, Tensor]) -> bool:
    """Whether the states hold no numbers (B = 0, or H = 0 for a cell): nothing to fuse, so the reference equations
    return the empty result (with torch's shapes, connected to the graph) on every implementation but native."""
    return hx[0].numel() == 0 or hx[1].numel() == 0


def _autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast runs an LSTM in on ``x``'s device, or None when autocast is off there."""
    device = x.device.type
    if not x.is_floating_point() or not torch.is_autocast_enabled(device):
        return None
    return torch.get_autocast_dtype(device)


def _autocast_by_torch(x: Tensor, impl: str, variants, recurrent_dropout: float, lengths) -> bool:
    """Whether torch's own autocast handles this call: a plain stack off the CPU, which runs torch's kernel (auto
    and native there are cuDNN for every plain configuration, :func:`resolve_impl`). On CUDA autocast casts
    ``aten::_cudnn_rnn``'s weights itself and packs them into one buffer again (torch's
    aten/src/ATen/cudnn/AutocastRNN.cpp); casting them here instead would hand cuDNN separate tensors (its "weights
    are not part of single contiguous chunk" warning and a copy on every call). The result is then torch.nn.LSTM's
    under autocast, bit for bit."""
    if x.device.type == "cpu" or impl not in ("auto", "native") or lengths is not None:
        return False
    return not any(describe_variant(v, recurrent_dropout) for v in (variants or (NO_VARIANT,)))


def _autocast_stack(x: Tensor, hx, weights: Sequence[LayerWeights], *, variants, **options):
    """:func:`lstm` under autocast, as autocast treats torch's ``aten::lstm`` (a lower-precision op): every
    floating input, state and weight cast to autocast's dtype, the whole stack computed in it with autocast
    off, the outputs in that dtype. Without this the fused path would multiply a float32 input by bfloat16
    weights ("mat1 and mat2 must have the same dtype")."""
    dtype = _autocast_dtype(x)

    def cast(t):
        if isinstance(t, Tensor) and t.is_floating_point():
            return t.to(dtype)
        if isinstance(t, tuple):  # layer-norm (gain, bias) pairs
            return tuple(cast(u) for u in t)
        return t

    weights = [LayerWeights(*(cast(w) for w in layer)) for layer in weights]
    if variants is not None:
        variants = [Variant(*(cast(field) for field in v)) for v in variants]
    with torch.autocast(x.device.type, enabled=False):
        return lstm(cast(x), (cast(hx[0]), cast(hx[1])), weights, variants=variants, **options)


def describe_variant(variant: Variant, recurrent_dropout: float = 0.0) -> str:
    """The options torch's kernel cannot compute, as words ('' when none)."""
    names = []
    if recurrent_dropout > 0:
        names.append("recurrent_dropout")
    if isinstance(variant.zoneout_h, Tensor) or isinstance(variant.zoneout_c, Tensor) or variant.zoneout_h or variant.zoneout_c:
        names.append("zoneout")
    if variant.ln_ih is not None or variant.ln_hh is not None or variant.ln_c is not None:
        names.append("layer_norm")
    if variant.peephole is not None:
        names.append("peephole")
    if variant.cell_clip is not None:
        names.append("cell_clip")
    return ", ".join(names)


def _draw_masks(variant: Variant, recurrent_dropout: float, training: bool, x: Tensor, state: tuple[Tensor, Tensor]) -> Variant:
    """In training: the recurrent-dropout mask (B, P) and zoneout masks laid out like ``x``; in eval zoneout stays
    a probability (its expectation) and recurrent dropout is off."""
    if not training:
        return variant
    rows = x.shape[:-1]  # (T, B) or (N,)
    h0, c0 = state
    mask = None
    if recurrent_dropout > 0:  # (B, P): 0 with probability p, survivors scaled 1/(1-p)
        mask = dropout_mask(h0.shape, recurrent_dropout, dtype=h0.dtype, device=h0.device)
    zone_h, zone_c = variant.zoneout_h, variant.zoneout_c
    if not isinstance(zone_h, Tensor) and zone_h > 0:  # 1 (keep the previous h) with probability p
        zone_h = bernoulli_mask((*rows, h0.shape[-1]), zone_h, device=x.device, dtype=x.dtype)  # (T, B, P) or (N, P)
    if not isinstance(zone_c, Tensor) and zone_c > 0:
        zone_c = bernoulli_mask((*rows, c0.shape[-1]), zone_c, device=x.device, dtype=x.dtype)  # (T, B, H) or (N, H)
    return variant._replace(recurrent_mask=mask, zoneout_h=zone_h, zoneout_c=zone_c)


_SCALAR_NAMES = {
    torch.float64: "Double", torch.float32: "Float", torch.float16: "Half", torch.bfloat16: "BFloat16",
    torch.int64: "Long", torch.int32: "Int", torch.int16: "Short", torch.int8: "Char", torch.uint8: "Byte",
    torch.bool: "Bool",
}


def _check_cell_args(x: Tensor, hx, w_ih: Tensor, w_hh: Tensor) -> None:
    """torch's checks of one cell step (``aten::lstm_cell``), in its order and words, so every impl fails alike:
    hx a pair of tensors, the input size, then for h and c the batch before the hidden size; then the dtypes of
    the two matmuls (torch promotes a c of another dtype, so that is no error). Under autocast torch casts the
    matmuls, so dtypes are not compared there."""
    if not isinstance(hx, (tuple, list)):
        raise TypeError(f"lstm_cell(): argument 'hx' (position 2) must be tuple of Tensors, not {type(hx).__name__}")
    if len(hx) != 2:
        raise RuntimeError("lstm_cell expects two hidden states")
    if x.size(1) != w_ih.size(1):
        raise RuntimeError(f"input has inconsistent input_size: got {x.size(1)} expected {w_ih.size(1)}")
    hidden = w_hh.size(1)
    for k, state in enumerate(hx):
        if state.size(0) != x.size(0):
            raise RuntimeError(f"Input batch size {x.size(0)} doesn't match hidden{k} batch size {state.size(0)}")
        if state.size(1) != hidden:
            raise RuntimeError(f"hidden{k} has inconsistent hidden_size: got {state.size(1)}, expected {hidden}")
    for k, t in enumerate((w_ih, *hx)):
        if t.device != x.device:  # torch's kernels say "Tensor on device cpu is not on the expected device meta!"
            name = "the weights" if k == 0 else f"hidden{k - 1}"
            raise RuntimeError(f"lstm_cell: {name} {'are' if k == 0 else 'is'} on {t.device} but the input is on {x.device}")
    if _autocast_dtype(x) is not None:
        return
    for a, b in ((x, w_ih), (hx[0], w_hh)):
        if a.dtype != b.dtype:
            names = (_SCALAR_NAMES.get(a.dtype, str(a.dtype)), _SCALAR_NAMES.get(b.dtype, str(b.dtype)))
            raise RuntimeError(f"mat1 and mat2 must have the same dtype, but got {names[0]} and {names[1]}")


def lstm_cell(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    *,
    impl: str = "auto",
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, Tensor]:
    """One step: ``x`` (B, I), ``hx = (h (B, H), c (B, H))`` -> new ``(h, c)``. ``auto`` is torch's kernel, or, when
    ``variant`` asks for something the kernel cannot do, the reference cell: for a single step the equations with
    autograd are faster than the fused layer, whose buffers, weight reorder and backward set-up pay off only over
    many steps (benchmarks/RESULTS.md, "lstmkit.LSTMCell with a variant"). Zoneout masks here are one step's."""
    _check_cell_args(x, hx, w_ih, w_hh)
    which = resolve_impl(
        impl, device=x.device, dtype=x.dtype, packed=False, projected=False, variant=describe_variant(variant), steps=1
    )
    if which == "native":
        return torch._VF.lstm_cell(x, hx, w_ih, w_hh, b_ih, b_hh)
    if which == "fused" and (_empty(hx) or _autocast_dtype(x) is not None or hx[1].dtype != x.dtype):
        # nothing to fuse, or what torch's cell does by type promotion and autocast's casts of its matmuls
        # (float32 states stay float32, a float64 c makes the result float64): the reference equations do the same
        which = "reference"
    if which == "fused":
        as_steps = variant._replace(
            zoneout_h=variant.zoneout_h.unsqueeze(0) if isinstance(variant.zoneout_h, Tensor) else variant.zoneout_h,
            zoneout_c=variant.zoneout_c.unsqueeze(0) if isinstance(variant.zoneout_c, Tensor) else variant.zoneout_c,
        )
        out, (h, c) = lstm_layer_fused(x.unsqueeze(0), hx, w_ih, w_hh, b_ih, b_hh, variant=as_steps)
        return h, c
    return lstm_cell_ref(x, hx, w_ih, w_hh, b_ih, b_hh, variant=variant)
