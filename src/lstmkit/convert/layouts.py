"""Move one LSTM layer's weights between torch's layout and the layouts other libraries use.

Every LSTM computes the same four blocks of pre-activations from ``x_t`` and ``h_{t-1}``; libraries differ only in
the order they stack the blocks, whether a matrix is stored as (out, in) or (in, out), and how many bias vectors
they keep. This module speaks torch's names and gate letters everywhere: ``i`` input gate, ``f`` forget gate,
``g`` cell candidate (Keras calls it ``c``, the fast.ai course ``cellgate``), ``o`` output gate.

======================  ==========  ===========================================  ==========================
convention              gate order  input / recurrent matrices                   bias
======================  ==========  ===========================================  ==========================
torch.nn.LSTM           i, f, g, o  ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}``  ``bias_ih_l{k}`` and
                                    (4H, H); ``_reverse`` suffix for the          ``bias_hh_l{k}``, (4H,) each
                                    backward direction
torch.nn.LSTMCell       i, f, g, o  ``weight_ih`` (4H, I), ``weight_hh`` (4H, H)   ``bias_ih``, ``bias_hh``
Keras ``LSTM``          i, f, g, o  ``kernel`` (I, 4H), ``recurrent_kernel``      one ``bias`` (4H,)
                                    (H, 4H)
haste ``LSTM``          i, g, f, o  ``kernel`` (I, 4H), ``recurrent_kernel``      one ``bias`` (4H,)
                                    (H, 4H)
fast.ai course cell     i, f, o, g  ``ih.weight`` (4H, I), ``hh.weight`` (4H, H)   ``ih.bias``, ``hh.bias``
======================  ==========  ===========================================  ==========================

What each convention was checked against:

* Keras: ``keras.layers.LSTMCell`` forms ``z = x @ kernel + h @ recurrent_kernel + bias``, splits ``z`` into four
  equal column blocks and reads them as input gate, forget gate, candidate, output gate; ``layer.get_weights()``
  returns ``[kernel, recurrent_kernel, bias]`` in that order. The cells agree with torch only with Keras's default
  activations (``activation="tanh"``, ``recurrent_activation="sigmoid"``; Keras releases before 2.3 defaulted to
  ``hard_sigmoid``).
* haste (lmnt-com/haste): the PyTorch layer's documentation (docs/pytorch/haste_pytorch/LSTM.md) describes
  ``kernel`` as (input_size, hidden_size * 4), ``recurrent_kernel`` as (hidden_size, hidden_size * 4) and ``bias``
  as (hidden_size * 4), all "with ``i,g,f,o`` gate layout", and says the forget-gate bias is set to ``forget_bias``;
  ``reset_parameters`` in frameworks/pytorch/lstm.py writes that value into the third block, and the CPU fallback
  there steps ``h @ recurrent_kernel + x @ kernel + bias`` and chunks the result as i, g, f, o. haste's own
  ``from_native_weights`` swaps the middle two blocks, transposes and sums the two torch biases, which is what
  :func:`from_haste` undoes (haste's ``to_native_weights`` halves the bias into both torch vectors; here the whole
  bias goes to ``bias_ih``, see below).
* fast.ai course cell (course-v3 ``12a_awd_lstm`` and fastbook chapter 12): ``ih = nn.Linear(ni, 4*nh)``,
  ``hh = nn.Linear(nh, 4*nh)``; ``(ih(x) + hh(h)).chunk(4, 1)`` gives ``ingate, forgetgate, outgate`` (sigmoid) and
  then ``cellgate`` (tanh). The course's layer wraps the cell as ``self.cell``, so its keys carry a ``cell.`` prefix
  that callers add or strip themselves.

Keras and haste keep one bias where torch keeps two. Going to them, the bias is ``bias_ih + bias_hh``; coming back,
the whole bias is put in ``bias_ih`` and ``bias_hh`` is zeros. The layer computes the same function, and a foreign ->
torch -> foreign round trip is exact, but torch -> foreign -> torch changes how the bias is split between the two
vectors (their sum is kept exactly).

Inputs may be torch tensors or anything ``numpy.array`` accepts (numpy arrays, JAX arrays, nested lists). Every
function returns new torch tensors that share no memory with its inputs, with the inputs' dtype and device; call
``.numpy()`` on the results to hand them to Keras's ``set_weights``. ``layer`` is the torch layer index ``k`` and
``reverse=True`` picks the backward direction of a bidirectional torch LSTM (Keras's ``Bidirectional`` keeps that
direction in its ``backward_layer``).

Layers with a projection (``proj_size > 0``, a ``weight_hr_l{k}`` entry) have no counterpart in Keras, haste, the
course cell or ``torch.nn.LSTMCell``; converting one raises ``ValueError``.

Shapes: I input size, H hidden size, P projection size.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np
import torch

__all__ = [
    "TransposedWeights",
    "to_keras",
    "from_keras",
    "to_haste",
    "from_haste",
    "to_course_cell",
    "from_course_cell",
    "cell_to_layer",
    "layer_to_cell",
]

# Gate order of each convention, in torch's letters (Keras's "c" and the course's "cellgate" are torch's "g").
TORCH_GATE_ORDER = "ifgo"
KERAS_GATE_ORDER = "ifgo"
HASTE_GATE_ORDER = "igfo"
COURSE_GATE_ORDER = "ifog"


class _LayerEntries(NamedTuple):
    """The four entries of one torch LSTM layer and direction: names, or the tensors under those names."""

    weight_ih: Any
    weight_hh: Any
    bias_ih: Any
    bias_hh: Any


_CELL_NAMES = _LayerEntries("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_COURSE_NAMES = _LayerEntries("ih.weight", "hh.weight", "ih.bias", "hh.bias")


def _layer_names(layer: int, reverse: bool) -> _LayerEntries:
    """torch.nn.LSTM's names for layer ``layer``, backward direction when ``reverse``."""
    if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
        raise ValueError(f"layer must be a non-negative int, got {layer!r}")
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    return _LayerEntries(*(name + suffix for name in _CELL_NAMES))


def _projection_name(layer: int, reverse: bool) -> str:
    return f"weight_hr_l{layer}" + ("_reverse" if reverse else "")


def _as_tensor(value: Any, name: str) -> torch.Tensor:
    """``value`` as a detached tensor: tensors as they are, anything else copied through ``numpy.array``.

    The copy makes read-only arrays (such as numpy views of JAX arrays) safe to wrap without torch's warning.
    """
    if isinstance(value, torch.Tensor):
        return value.detach()
    try:
        array = np.array(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a tensor or array-like, got {type(value).__name__}") from error
    if array.dtype == object:
        raise TypeError(f"{name} must be a numeric tensor or array, got an array of Python objects")
    return torch.from_numpy(array)


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _reorder_gates(tensor: torch.Tensor, source_order: str, target_order: str, dim: int) -> torch.Tensor:
    """Restack the four equal gate blocks of ``tensor`` along ``dim`` from ``source_order`` to ``target_order``.

    Always returns a new tensor (``torch.cat`` allocates), so results never alias the input.
    """
    blocks = dict(zip(source_order, tensor.chunk(4, dim)))
    return torch.cat([blocks[gate] for gate in target_order], dim)


def _read_entries(state_dict: Mapping[str, Any], names: _LayerEntries, where: str) -> _LayerEntries:
    """Fetch the two weights (required) and the two biases (both or neither) named by ``names``."""
    for name in (names.weight_ih, names.weight_hh):
        if name not in state_dict:
            keys = sorted(str(key) for key in state_dict)
            shown = keys[:12] + (["..."] if len(keys) > 12 else [])
            raise KeyError(f"{where} has no entry {name!r}; its keys are {shown}")
    has_bias_ih, has_bias_hh = names.bias_ih in state_dict, names.bias_hh in state_dict
    if has_bias_ih != has_bias_hh:
        missing = names.bias_hh if has_bias_ih else names.bias_ih
        present = names.bias_ih if has_bias_ih else names.bias_hh
        raise KeyError(f"{where} has {present!r} but no {missing!r}; give both biases or neither")
    return _LayerEntries(
        _as_tensor(state_dict[names.weight_ih], names.weight_ih),
        _as_tensor(state_dict[names.weight_hh], names.weight_hh),
        _as_tensor(state_dict[names.bias_ih], names.bias_ih) if has_bias_ih else None,
        _as_tensor(state_dict[names.bias_hh], names.bias_hh) if has_bias_hh else None,
    )


def _check_torch_shapes(entries: _LayerEntries, names: _LayerEntries) -> int:
    """Check (4H, I), (4H, H), (4H,), (4H,) and return H."""
    weight_ih, weight_hh = entries.weight_ih, entries.weight_hh
    if weight_ih.dim() != 2 or weight_ih.shape[0] % 4 != 0:
        raise ValueError(
            f"{names.weight_ih} must have shape (4 * hidden_size, input_size), got {_shape(weight_ih)}"
            + (f"; {weight_ih.shape[0]} is not divisible by 4" if weight_ih.dim() == 2 else "")
        )
    hidden_size = weight_ih.shape[0] // 4
    if _shape(weight_hh) != (4 * hidden_size, hidden_size):
        raise ValueError(
            f"{names.weight_hh} must have shape (4 * hidden_size, hidden_size) = {(4 * hidden_size, hidden_size)} "
            f"to match {names.weight_ih} of shape {_shape(weight_ih)}, got {_shape(weight_hh)}"
        )
    for bias, name in ((entries.bias_ih, names.bias_ih), (entries.bias_hh, names.bias_hh)):
        if bias is not None and _shape(bias) != (4 * hidden_size,):
            raise ValueError(
                f"{name} must have shape (4 * hidden_size,) = {(4 * hidden_size,)} "
                f"to match {names.weight_ih} of shape {_shape(weight_ih)}, got {_shape(bias)}"
            )
    return hidden_size


def _read_torch_layer(state_dict: Mapping[str, Any], layer: int, reverse: bool, target: str) -> _LayerEntries:
    """One validated torch.nn.LSTM layer/direction, refusing projected layers that ``target`` cannot hold."""
    names = _layer_names(layer, reverse)
    projection = _projection_name(layer, reverse)
    if projection in state_dict:
        proj_size = _shape(_as_tensor(state_dict[projection], projection))[0]
        raise ValueError(
            f"{projection} is present: layer {layer} projects h to proj_size={proj_size} features, "
            f"and {target} has no projection, so this layer cannot be converted"
        )
    entries = _read_entries(state_dict, names, "state_dict")
    _check_torch_shapes(entries, names)
    return entries


def _summed_bias(entries: _LayerEntries) -> torch.Tensor:
    """bias_ih + bias_hh, or zeros for a layer built with ``bias=False``."""
    if entries.bias_ih is None:
        return entries.weight_ih.new_zeros(entries.weight_ih.shape[0])
    return entries.bias_ih + entries.bias_hh


class TransposedWeights(NamedTuple):
    """One LSTM layer in the Keras/haste layout: matrices stored (in, out), one bias; unpacks as a 3-tuple."""

    kernel: torch.Tensor  # (I, 4H)
    recurrent_kernel: torch.Tensor  # (H, 4H)
    bias: torch.Tensor  # (4H,)


def _read_transposed(kernel: Any, recurrent_kernel: Any, bias: Any, convention: str) -> TransposedWeights:
    """Tensors for a (kernel (I, 4H), recurrent_kernel (H, 4H), bias (4H,)) triple, shapes checked."""
    kernel = _as_tensor(kernel, "kernel")
    recurrent_kernel = _as_tensor(recurrent_kernel, "recurrent_kernel")
    bias = _as_tensor(bias, "bias")
    if kernel.dim() != 2 or kernel.shape[1] % 4 != 0:
        raise ValueError(
            f"{convention} kernel must have shape (input_size, 4 * hidden_size), got {_shape(kernel)}"
            + (f"; {kernel.shape[1]} is not divisible by 4" if kernel.dim() == 2 else "")
        )
    hidden_size = kernel.shape[1] // 4
    if _shape(recurrent_kernel) != (hidden_size, 4 * hidden_size):
        raise ValueError(
            f"{convention} recurrent_kernel must have shape (hidden_size, 4 * hidden_size) = "
            f"{(hidden_size, 4 * hidden_size)} to match kernel of shape {_shape(kernel)}, "
            f"got {_shape(recurrent_kernel)}"
        )
    if _shape(bias) != (4 * hidden_size,):
        raise ValueError(
            f"{convention} bias must have shape (4 * hidden_size,) = {(4 * hidden_size,)} "
            f"to match kernel of shape {_shape(kernel)}, got {_shape(bias)}"
        )
    return TransposedWeights(kernel, recurrent_kernel, bias)


def _torch_to_transposed(
    state_dict: Mapping[str, Any], layer: int, reverse: bool, gate_order: str, convention: str
) -> TransposedWeights:
    """torch (out, in) matrices and two biases -> (in, out) matrices in ``gate_order`` and one summed bias."""
    entries = _read_torch_layer(state_dict, layer, reverse, convention)
    weight_ih = _reorder_gates(entries.weight_ih, TORCH_GATE_ORDER, gate_order, dim=0)  # (4H, I)
    weight_hh = _reorder_gates(entries.weight_hh, TORCH_GATE_ORDER, gate_order, dim=0)  # (4H, H)
    return TransposedWeights(
        kernel=weight_ih.T.contiguous(),  # (I, 4H)
        recurrent_kernel=weight_hh.T.contiguous(),  # (H, 4H)
        bias=_reorder_gates(_summed_bias(entries), TORCH_GATE_ORDER, gate_order, dim=0),  # (4H,)
    )


def _transposed_to_torch(
    kernel: Any, recurrent_kernel: Any, bias: Any, layer: int, reverse: bool, gate_order: str, convention: str
) -> dict[str, torch.Tensor]:
    """The inverse of :func:`_torch_to_transposed`, with the whole bias in ``bias_ih`` and zeros in ``bias_hh``."""
    names = _layer_names(layer, reverse)
    weights = _read_transposed(kernel, recurrent_kernel, bias, convention)
    kernel = _reorder_gates(weights.kernel, gate_order, TORCH_GATE_ORDER, dim=1)  # (I, 4H)
    recurrent_kernel = _reorder_gates(weights.recurrent_kernel, gate_order, TORCH_GATE_ORDER, dim=1)  # (H, 4H)
    bias = _reorder_gates(weights.bias, gate_order, TORCH_GATE_ORDER, dim=0)  # (4H,)
    return {
        names.weight_ih: kernel.T.contiguous(),  # (4H, I)
        names.weight_hh: recurrent_kernel.T.contiguous(),  # (4H, H)
        names.bias_ih: bias,  # (4H,)
        names.bias_hh: torch.zeros_like(bias),  # (4H,)
    }


def to_keras(
    state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> TransposedWeights:
    r"""Convert one torch.nn.LSTM layer to the weights of a ``keras.layers.LSTM``.

    Keras steps the cell as

    .. math::
        z = x_t W + h_{t-1} U + b, \qquad [z_i, z_f, z_c, z_o] = \text{split}(z, 4)

    with the same gate order as torch, so the conversion transposes the two matrices and sums the two biases.

    Args:
        state_dict: a torch.nn.LSTM ``state_dict()`` (or any mapping with its names), tensors or arrays.
        layer: the layer index ``k`` of the ``*_l{k}`` entries. Default: 0
        reverse: take the backward direction (``*_l{k}_reverse``) of a bidirectional LSTM. Default: ``False``

    Returns:
        :class:`TransposedWeights` ``(kernel, recurrent_kernel, bias)`` of tensors shaped (I, 4H), (H, 4H) and
        (4H,), the order ``layer.set_weights`` expects (after ``.numpy()``). ``bias`` is ``bias_ih + bias_hh``, or
        zeros when the LSTM was built with ``bias=False``.

    Raises:
        KeyError: the state_dict has no weights for this layer and direction.
        ValueError: the entries have inconsistent shapes, or the layer has a projection (``proj_size > 0``).

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> kernel, recurrent_kernel, bias = to_keras(lstm.state_dict())
        >>> kernel.shape, recurrent_kernel.shape, bias.shape
        (torch.Size([3, 20]), torch.Size([5, 20]), torch.Size([20]))
    """
    return _torch_to_transposed(state_dict, layer, reverse, KERAS_GATE_ORDER, "Keras LSTM")


def from_keras(
    kernel: Any, recurrent_kernel: Any, bias: Any, layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Convert a ``keras.layers.LSTM``'s weights to one torch.nn.LSTM layer's ``state_dict`` entries.

    The inverse of :func:`to_keras`. Keras has one bias; it all goes to ``bias_ih_l{k}`` and ``bias_hh_l{k}`` is
    zeros, which gives the same layer output as any other split.

    Args:
        kernel: (I, 4H) input matrix, gate order i, f, c, o; a tensor or array (e.g. from ``layer.get_weights()``).
        recurrent_kernel: (H, 4H) recurrent matrix, same gate order.
        bias: (4H,) bias, same gate order.
        layer: the layer index ``k`` the entries are named for. Default: 0
        reverse: name them for the backward direction (``*_l{k}_reverse``). Default: ``False``

    Returns:
        dict with ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}`` (4H,) and
        ``bias_hh_l{k}`` (4H,) tensors, ready for ``load_state_dict`` (``strict=False`` when the module has other
        layers too).

    Raises:
        ValueError: the shapes do not fit (I, 4H), (H, 4H), (4H,).

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> lstm.load_state_dict(from_keras(*to_keras(lstm.state_dict())))
        <All keys matched successfully>
    """
    return _transposed_to_torch(kernel, recurrent_kernel, bias, layer, reverse, KERAS_GATE_ORDER, "Keras")


def to_haste(
    state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> TransposedWeights:
    r"""Convert one torch.nn.LSTM layer to the weights of a haste (lmnt-com/haste) ``LSTM``.

    haste stores matrices transposed like Keras but stacks the gates as i, g, f, o:

    .. math::
        z = h_{t-1} R + x_t K + b, \qquad [z_i, z_g, z_f, z_o] = \text{chunk}(z, 4)

    Args:
        state_dict: a torch.nn.LSTM ``state_dict()`` (or any mapping with its names), tensors or arrays.
        layer: the layer index ``k`` of the ``*_l{k}`` entries. Default: 0
        reverse: take the backward direction (``*_l{k}_reverse``) of a bidirectional LSTM. Default: ``False``

    Returns:
        :class:`TransposedWeights` ``(kernel, recurrent_kernel, bias)`` of tensors shaped (I, 4H), (H, 4H) and
        (4H,): haste's ``kernel``, ``recurrent_kernel`` and ``bias`` parameters. ``bias`` is ``bias_ih + bias_hh``
        reordered, or zeros when the LSTM was built with ``bias=False``.

    Raises:
        KeyError: the state_dict has no weights for this layer and direction.
        ValueError: the entries have inconsistent shapes, or the layer has a projection (``proj_size > 0``).

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> kernel, recurrent_kernel, bias = to_haste(lstm.state_dict())
        >>> torch.equal(kernel[:, 5:10], lstm.weight_ih_l0.detach()[10:15].T)  # haste's 2nd block is torch's g
        True
    """
    return _torch_to_transposed(state_dict, layer, reverse, HASTE_GATE_ORDER, "haste LSTM")


def from_haste(
    kernel: Any, recurrent_kernel: Any, bias: Any, layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Convert a haste ``LSTM``'s weights to one torch.nn.LSTM layer's ``state_dict`` entries.

    The inverse of :func:`to_haste`. haste has one bias; it all goes to ``bias_ih_l{k}`` and ``bias_hh_l{k}`` is
    zeros (haste's own ``to_native_weights`` halves it into both instead; the layer output is the same).

    Args:
        kernel: (I, 4H) input matrix, gate order i, g, f, o.
        recurrent_kernel: (H, 4H) recurrent matrix, same gate order.
        bias: (4H,) bias, same gate order.
        layer: the layer index ``k`` the entries are named for. Default: 0
        reverse: name them for the backward direction (``*_l{k}_reverse``). Default: ``False``

    Returns:
        dict with ``weight_ih_l{k}`` (4H, I), ``weight_hh_l{k}`` (4H, H), ``bias_ih_l{k}`` (4H,) and
        ``bias_hh_l{k}`` (4H,) tensors.

    Raises:
        ValueError: the shapes do not fit (I, 4H), (H, 4H), (4H,).

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> lstm.load_state_dict(from_haste(*to_haste(lstm.state_dict())))
        <All keys matched successfully>
    """
    return _transposed_to_torch(kernel, recurrent_kernel, bias, layer, reverse, HASTE_GATE_ORDER, "haste")


def to_course_cell(
    state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Convert one torch.nn.LSTM layer to the fast.ai course's ``LSTMCell`` (``ih``/``hh`` linear layers).

    The course cell computes

    .. math::
        [z_i, z_f, z_o, z_g] = \text{chunk}(\text{ih}(x_t) + \text{hh}(h_{t-1}), 4)

    so the matrices keep torch's (out, in) layout and both biases survive; only the last two gate blocks swap
    places. Both directions of the conversion are exact.

    Args:
        state_dict: a torch.nn.LSTM ``state_dict()`` (or any mapping with its names), tensors or arrays.
        layer: the layer index ``k`` of the ``*_l{k}`` entries. Default: 0
        reverse: take the backward direction (``*_l{k}_reverse``). Default: ``False``

    Returns:
        dict with ``ih.weight`` (4H, I), ``hh.weight`` (4H, H), ``ih.bias`` (4H,) and ``hh.bias`` (4H,) tensors
        (biases are zeros when the LSTM was built with ``bias=False``; the course's ``nn.Linear`` layers have them).

    Raises:
        KeyError: the state_dict has no weights for this layer and direction.
        ValueError: the entries have inconsistent shapes, or the layer has a projection (``proj_size > 0``).

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> sorted(to_course_cell(lstm.state_dict()))
        ['hh.bias', 'hh.weight', 'ih.bias', 'ih.weight']
    """
    entries = _read_torch_layer(state_dict, layer, reverse, "the course LSTMCell")
    if entries.bias_ih is None:
        zeros = entries.weight_ih.new_zeros(entries.weight_ih.shape[0])
        entries = entries._replace(bias_ih=zeros, bias_hh=zeros)
    return {
        course_name: _reorder_gates(tensor, TORCH_GATE_ORDER, COURSE_GATE_ORDER, dim=0)  # (4H, ...) rows restacked
        for course_name, tensor in zip(_COURSE_NAMES, entries)
    }


def from_course_cell(
    course_state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Convert the fast.ai course ``LSTMCell``'s ``state_dict`` to one torch.nn.LSTM layer's entries.

    The inverse of :func:`to_course_cell`; exact.

    Args:
        course_state_dict: mapping with ``ih.weight`` (4H, I), ``hh.weight`` (4H, H) and, optionally but both
            together, ``ih.bias`` and ``hh.bias`` (4H,), gate order i, f, o, g. Strip any module prefix
            (``cell.``) first.
        layer: the layer index ``k`` the entries are named for. Default: 0
        reverse: name them for the backward direction (``*_l{k}_reverse``). Default: ``False``

    Returns:
        dict with ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}`` and ``bias_hh_l{k}`` tensors (biases are
        zeros when the course dict has none).

    Raises:
        KeyError: a weight is missing, or only one of the two biases is given.
        ValueError: the shapes are inconsistent.

    Example::

        >>> lstm = torch.nn.LSTM(3, 5)
        >>> lstm.load_state_dict(from_course_cell(to_course_cell(lstm.state_dict())))
        <All keys matched successfully>
    """
    names = _layer_names(layer, reverse)
    entries = _read_entries(course_state_dict, _COURSE_NAMES, "course_state_dict")
    _check_torch_shapes(entries, _COURSE_NAMES)
    if entries.bias_ih is None:
        zeros = entries.weight_ih.new_zeros(entries.weight_ih.shape[0])
        entries = entries._replace(bias_ih=zeros, bias_hh=zeros)
    return {
        torch_name: _reorder_gates(tensor, COURSE_GATE_ORDER, TORCH_GATE_ORDER, dim=0)  # (4H, ...) rows restacked
        for torch_name, tensor in zip(names, entries)
    }


def _renamed(entries: _LayerEntries, target_names: _LayerEntries) -> dict[str, torch.Tensor]:
    """Copies of the present entries under ``target_names`` (absent biases stay absent)."""
    return {
        name: tensor.clone(memory_format=torch.contiguous_format)
        for name, tensor in zip(target_names, entries)
        if tensor is not None
    }


def cell_to_layer(
    cell_state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Rename a torch.nn.LSTMCell's ``state_dict`` to the entries of one torch.nn.LSTM layer.

    Both modules share gate order and layout, so values are copied unchanged: ``weight_ih`` becomes
    ``weight_ih_l{k}`` (or ``weight_ih_l{k}_reverse``), and so on.

    Args:
        cell_state_dict: a torch.nn.LSTMCell ``state_dict()``: ``weight_ih`` (4H, I), ``weight_hh`` (4H, H) and,
            unless the cell has ``bias=False``, ``bias_ih`` and ``bias_hh`` (4H,).
        layer: the layer index ``k`` to name the entries for. Default: 0
        reverse: name them for the backward direction. Default: ``False``

    Returns:
        dict of copied tensors under torch.nn.LSTM names (no bias entries when the cell had none).

    Raises:
        KeyError: a weight is missing, or only one of the two biases is given.
        ValueError: the dict holds other keys, or the shapes are inconsistent.

    Example::

        >>> cell = torch.nn.LSTMCell(3, 5)
        >>> sorted(cell_to_layer(cell.state_dict(), layer=1))
        ['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1']
    """
    target_names = _layer_names(layer, reverse)
    unexpected = sorted(str(key) for key in cell_state_dict if key not in _CELL_NAMES)
    if unexpected:
        raise ValueError(
            f"cell_state_dict should hold only torch.nn.LSTMCell entries {list(_CELL_NAMES)}, "
            f"but also has {unexpected}"
        )
    entries = _read_entries(cell_state_dict, _CELL_NAMES, "cell_state_dict")
    _check_torch_shapes(entries, _CELL_NAMES)
    return _renamed(entries, target_names)


def layer_to_cell(
    layer_state_dict: Mapping[str, Any], layer: int = 0, reverse: bool = False
) -> dict[str, torch.Tensor]:
    r"""Take one layer and direction of a torch.nn.LSTM ``state_dict`` and name it for torch.nn.LSTMCell.

    The inverse of :func:`cell_to_layer`; entries of other layers and directions are ignored.

    Args:
        layer_state_dict: a torch.nn.LSTM ``state_dict()``.
        layer: which layer ``k`` to take. Default: 0
        reverse: take the backward direction (``*_l{k}_reverse``). Default: ``False``

    Returns:
        dict of copied tensors named ``weight_ih``, ``weight_hh`` and (when present) ``bias_ih``, ``bias_hh``, ready
        for ``torch.nn.LSTMCell.load_state_dict``.

    Raises:
        KeyError: the state_dict has no weights for this layer and direction.
        ValueError: the shapes are inconsistent, or the layer has a projection (``proj_size > 0``), which
            LSTMCell lacks.

    Example::

        >>> lstm = torch.nn.LSTM(3, 5, num_layers=2)
        >>> cell = torch.nn.LSTMCell(5, 5)
        >>> cell.load_state_dict(layer_to_cell(lstm.state_dict(), layer=1))
        <All keys matched successfully>
    """
    entries = _read_torch_layer(layer_state_dict, layer, reverse, "torch.nn.LSTMCell")
    return _renamed(entries, _CELL_NAMES)
