"""``lstmkit::lstm_layer``: one LSTM layer in one direction as a PyTorch operator.

Why an operator: torch.compile, torch.export, autocast and exporters see a registered operator as one node with
known output shapes; an ``autograd.Function`` with a Python loop inside is opaque to them (graph breaks, no
autocast). Two operators are registered with :func:`torch.library.custom_op`:

- ``lstmkit::lstm_layer`` returns ``(output, h_n, c_n)`` followed by the workspace the backward reads
  (:data:`lstmkit.ops.fused.WORKSPACE`; empty (0,) tensors in a call without grad);
- ``lstmkit::lstm_layer_backward`` turns the output gradients and that workspace into the inputs' gradients.

Each has a fake kernel (shapes only, so a symbolic T and B flow through torch.export), the forward has an
autograd formula calling the backward operator, and an autocast rule (under ``torch.autocast("cpu",
dtype=torch.bfloat16)`` the layer runs in bfloat16, like torch.nn.LSTM; the C++ kernel has two ways to compute it,
bfloat16 GEMMs or its float32 loop with bfloat16-rounded GEMM operands, and takes the second on CPUs without
AMX-BF16: :func:`fused_backend` with ``torch.bfloat16`` says which, :func:`workspace_dtype` what it keeps).

Why ``custom_op`` in Python rather than C++ ``TORCH_LIBRARY``: the schema has to exist whether or not the C++
extension was built (it is optional: a machine without a compiler runs the Python kernels), and fake kernels,
the autograd formula and the double-backward fallback are Python either way. The CPU kernel is chosen per call:
the C++ extension (``lstmkit.ops._C``, built by ``make setup``) when it loaded, else the readable Python kernels of
:mod:`lstmkit.ops.fused`; :func:`fused_backend` says which runs and :func:`use_fused_backend` forces one. Both
kernels read and write the same workspace layout, so their forward and backward halves can be mixed.

Double backward: when the backward runs with ``create_graph=True`` the gradients are recomputed through the
reference equations (:func:`lstmkit.ops.reference.lstm_layer_ref`) with autograd, which is differentiable again;
the operator's own backward is not. Batched gradients (``torch.autograd.grad(..., is_grads_batched=True)``) need
no rule here: the legacy vmap that call uses runs ``lstmkit::lstm_layer_backward`` once per vector through
PyTorch's batching fallback (tests/nn/test_torch_contract.py compares both with torch.nn.LSTM).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from . import fused
from .fused import GRADIENTS, WORKSPACE
from .reference import NO_VARIANT, Variant, lstm_layer_ref

__all__ = ["fused_backend", "lstm_layer_fused", "packed_zero_state", "use_fused_backend", "cpp_extension_error",
           "cpp_extension_stale"]

BACKENDS = ("cpp", "python")
_forced: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lstmkit_fused_backend", default=os.environ.get("LSTMKIT_FUSED") or None
)

try:  # the optional C++ kernels, compiled by `make setup`
    from . import _C as _cpp  # type: ignore[attr-defined]

    _cpp_error: str | None = None
except ImportError as error:  # not built (no compiler, or the build failed): the Python kernels serve
    _cpp = None
    # with no _C file at all, Python's own message blames a circular import; say what happened instead
    _cpp_error = (str(error) if importlib.util.find_spec(f"{__package__}._C") is not None
                  else "no compiled lstmkit/ops/_C file; `make setup` builds it, or says in one line why it cannot")


def cpp_extension_error() -> str | None:
    """Why the C++ extension is not available (None when it is)."""
    return _cpp_error


def cpp_extension_stale() -> str | None:
    """In a source checkout, why the loaded extension is not the one ``make setup`` would build from csrc/ now (the hash of
    the C++ sources compiled into it differs from csrc/build.py's source_hash() now); None when it matches, when it is
    not loaded, or when there is no csrc/ (an installed package). Benchmarks print it: timing a stale kernel
    measures old code."""
    script = Path(__file__).resolve().parents[3] / "csrc" / "build.py"
    if _cpp is None or not script.is_file():
        return None
    spec = importlib.util.spec_from_file_location("lstmkit_csrc_build", script)  # its source_hash(): one definition
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)  # type: ignore[union-attr]
    if build.source_hash() == getattr(_cpp, "source_hash", None):
        return None
    return f"lstmkit.ops._C was built from other sources than {script.parent}: run `make setup` to rebuild it"


def fused_backend(dtype: torch.dtype | None = None) -> str:
    """Which kernel computes ``impl="fused"`` on CPU: ``"cpp"`` (the C++ extension) or ``"python"``.

    With ``dtype=torch.bfloat16`` (what runs under CPU autocast) the C++ kernel's answer says how it multiplies:
    ``"cpp-bf16-native"`` (bfloat16 GEMMs, for CPUs with AMX-BF16) or ``"cpp-bf16-float32"`` (the float32 kernel
    with every GEMM operand rounded to bfloat16: the same products, faster where bfloat16 GEMMs are not in
    hardware). The environment variable ``LSTMKIT_CPP_BF16=native|float32`` forces one."""
    forced = _forced.get()
    if forced is not None:
        if forced not in BACKENDS:
            raise ValueError(f"LSTMKIT_FUSED / use_fused_backend must be one of {BACKENDS}, got {forced!r}")
        if forced == "cpp" and _cpp is None:
            raise RuntimeError(f"the C++ extension lstmkit.ops._C is not available ({_cpp_error}); run `make setup`")
        backend = forced
    else:
        backend = "cpp" if _cpp is not None else "python"
    if backend == "cpp" and dtype == torch.bfloat16:
        return f"cpp-bf16-{_cpp.bf16_gemm()}"
    return backend


@contextlib.contextmanager
def use_fused_backend(name: str) -> Iterator[None]:
    """Within the block, run the fused layer on ``name`` (``"cpp"`` or ``"python"``)."""
    if name not in BACKENDS:
        raise ValueError(f"fused backend must be one of {BACKENDS}, got {name!r}")
    token = _forced.set(name)
    try:
        fused_backend()  # fail here, not inside a model, when the extension is missing
        yield
    finally:
        _forced.reset(token)


def _kernels(x: Tensor):
    if x.device.type == "cpu" and fused_backend() == "cpp":
        return _cpp.forward, _cpp.backward
    return fused.forward_python, fused.backward_python


def workspace_dtype(x: Tensor) -> torch.dtype:
    """The dtype of the workspace the forward returns for input ``x``: x's, except bfloat16 on the C++ kernel's
    float32 way (:func:`fused_backend`), which keeps its float32 values for the backward (no rounding, no
    conversion passes)."""
    if x.dtype == torch.bfloat16 and x.device.type == "cpu" and fused_backend(torch.bfloat16) == "cpp-bf16-float32":
        return torch.float32
    return x.dtype


# ---------------------------------------------------------------------------------------------------- forward


@torch.library.custom_op("lstmkit::lstm_layer", mutates_args=())
def lstm_layer_op(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    batch_sizes: Tensor | None,
    reverse: bool,
    peephole: Tensor | None,
    ln_ih_w: Tensor | None,
    ln_ih_b: Tensor | None,
    ln_hh_w: Tensor | None,
    ln_hh_b: Tensor | None,
    ln_c_w: Tensor | None,
    ln_c_b: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h_mask: Tensor | None,
    zoneout_c_mask: Tensor | None,
    zoneout_h: float,
    zoneout_c: float,
    cell_clip: float | None,
    need_workspace: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """x (T, B, I) padded, or (N, I) packed rows with ``batch_sizes`` (int64, CPU); h0 (B, P), c0 (B, H); the
    rest as :class:`lstmkit.ops.reference.Variant` describes, zoneout masks laid out like x (a float probability
    serves eval when the mask is None). Returns output ((T, B, P) or (N, P)), h_n, c_n, then the workspace."""
    forward, _ = _kernels(x)
    return tuple(forward(
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b,
        ln_c_w, ln_c_b, recurrent_mask, zoneout_h_mask, zoneout_c_mask, zoneout_h, zoneout_c, cell_clip,
        need_workspace,
    ))


def workspace_shapes(x, h0, c0, w_hr, ln_ih_w, ln_hh_w, ln_c_w, zoneout_c_mask, zoneout_c, need_workspace):
    """The workspace shapes, in :data:`WORKSPACE` order (also the fake kernel's)."""
    rows = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
    hidden = c0.shape[1]
    if not need_workspace:
        return [(0,)] * len(WORKSPACE)
    zoning_c = zoneout_c_mask is not None or zoneout_c > 0
    return [
        (rows, 4 * hidden),  # gates
        (rows, hidden),  # cells
        (rows, hidden) if zoning_c else (0,),  # c_new
        (rows, hidden),  # tanh_c
        (rows, hidden) if w_hr is not None else (0,),  # h_raw
        (rows, 4 * hidden) if ln_ih_w is not None else (0,),  # x_proj
        (rows, 4 * hidden) if ln_hh_w is not None else (0,),  # rh
        (2, rows) if ln_ih_w is not None else (0,),  # stats_ih
        (2, rows) if ln_hh_w is not None else (0,),  # stats_hh
        (2, rows) if ln_c_w is not None else (0,),  # stats_c
    ]


@lstm_layer_op.register_fake
def _(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b,
      ln_c_w, ln_c_b, recurrent_mask, zoneout_h_mask, zoneout_c_mask, zoneout_h, zoneout_c, cell_clip, need_workspace):
    proj = h0.shape[1]
    output = x.new_empty((*x.shape[:-1], proj))
    shapes = workspace_shapes(x, h0, c0, w_hr, ln_ih_w, ln_hh_w, ln_c_w, zoneout_c_mask, zoneout_c, need_workspace)
    dtype = workspace_dtype(x)
    return (output, h0.new_empty(h0.shape), c0.new_empty(c0.shape), *(x.new_empty(s, dtype=dtype) for s in shapes))


# ---------------------------------------------------------------------------------------------------- backward


@torch.library.custom_op("lstmkit::lstm_layer_backward", mutates_args=())
def lstm_layer_backward_op(
    grad_output: Tensor,
    grad_h_n: Tensor,
    grad_c_n: Tensor,
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None,
    batch_sizes: Tensor | None,
    reverse: bool,
    peephole: Tensor | None,
    ln_ih_w: Tensor | None,
    ln_ih_b: Tensor | None,
    ln_hh_w: Tensor | None,
    ln_hh_b: Tensor | None,
    ln_c_w: Tensor | None,
    ln_c_b: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h_mask: Tensor | None,
    zoneout_c_mask: Tensor | None,
    zoneout_h: float,
    zoneout_c: float,
    cell_clip: float | None,
    output: Tensor,
    gates: Tensor,
    cells: Tensor,
    c_new: Tensor,
    tanh_c: Tensor,
    h_raw: Tensor,
    x_proj: Tensor,
    rh: Tensor,
    stats_ih: Tensor,
    stats_hh: Tensor,
    stats_c: Tensor,
    output_mask: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients named by :data:`lstmkit.ops.fused.GRADIENTS` (``bias``: of b_ih + b_hh); an empty (0,) tensor
    where ``output_mask`` does not ask for one or the input is absent."""
    _, backward = _kernels(x)
    return tuple(backward(
        grad_output.contiguous(), grad_h_n.contiguous(), grad_c_n.contiguous(), x, h0, c0, w_ih, w_hh, w_hr,
        batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b, ln_c_w, ln_c_b, recurrent_mask,
        zoneout_h_mask, zoneout_c_mask, zoneout_h, zoneout_c, cell_clip, output, gates, cells, c_new, tanh_c, h_raw,
        x_proj, rh, stats_ih, stats_hh, stats_c, list(output_mask),
    ))


def _gradient_shapes(x, h0, c0, w_ih, w_hh, w_hr, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b, ln_c_w, ln_c_b,
                     output_mask):
    like = dict(
        x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, bias=w_ih[:, 0], w_hr=w_hr, peephole=peephole, ln_ih_w=ln_ih_w,
        ln_ih_b=ln_ih_b, ln_hh_w=ln_hh_w, ln_hh_b=ln_hh_b, ln_c_w=ln_c_w, ln_c_b=ln_c_b,
    )
    return [tuple(like[k].shape) if want and like[k] is not None else (0,) for k, want in zip(GRADIENTS, output_mask)]


@lstm_layer_backward_op.register_fake
def _(grad_output, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b,
      ln_hh_w, ln_hh_b, ln_c_w, ln_c_b, recurrent_mask, zoneout_h_mask, zoneout_c_mask, zoneout_h, zoneout_c,
      cell_clip, output, gates, cells, c_new, tanh_c, h_raw, x_proj, rh, stats_ih, stats_hh, stats_c, output_mask):
    shapes = _gradient_shapes(x, h0, c0, w_ih, w_hh, w_hr, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b, ln_c_w,
                              ln_c_b, output_mask)
    return tuple(x.new_empty(s) for s in shapes)


# ---------------------------------------------------------------------------------------------------- autograd

_INPUTS = (
    "x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh", "w_hr", "batch_sizes", "reverse", "peephole", "ln_ih_w",
    "ln_ih_b", "ln_hh_w", "ln_hh_b", "ln_c_w", "ln_c_b", "recurrent_mask", "zoneout_h_mask", "zoneout_c_mask",
    "zoneout_h", "zoneout_c", "cell_clip", "need_workspace",
)
_TENSOR_INPUTS = tuple(n for n in _INPUTS if n not in ("reverse", "zoneout_h", "zoneout_c", "cell_clip", "need_workspace"))


def _setup_context(ctx, inputs, output):
    args = dict(zip(_INPUTS, inputs))
    ctx.save_for_backward(*(args[n] for n in _TENSOR_INPUTS), output[0], *output[3:])
    ctx.options = (args["reverse"], args["zoneout_h"], args["zoneout_c"], args["cell_clip"])
    ctx.had_workspace = args["need_workspace"]
    ctx.matmul = fused.matmul_backend()  # the Python kernel's GEMM choice, kept for this call's backward
    ctx.mark_non_differentiable(*output[3:])
    # no zero tensors for the outputs without a gradient: autograd would otherwise allocate one per workspace output
    # (gates, cells, tanh_c, ...: 301 MB at T=200 B=64 H=1024) just to pass them to _backward, which ignores them
    ctx.set_materialize_grads(False)


def _backward(ctx, grad_output, grad_h_n, grad_c_n, *_workspace_grads):
    saved = ctx.saved_tensors
    args = dict(zip(_TENSOR_INPUTS, saved))
    output, workspace = saved[len(_TENSOR_INPUTS)], saved[len(_TENSOR_INPUTS) + 1 :]
    reverse, zoneout_h, zoneout_c, cell_clip = ctx.options
    needs = dict(zip(_INPUTS, ctx.needs_input_grad))
    if torch.is_grad_enabled():  # create_graph=True: a differentiable backward (the hook for double backward)
        return _backward_through_reference(args, (reverse, zoneout_h, zoneout_c, cell_clip), needs,
                                           (grad_output, grad_h_n, grad_c_n))
    if not ctx.had_workspace:
        raise RuntimeError(
            "lstmkit::lstm_layer was called with need_workspace=False, so it kept nothing for a backward; "
            "call it with need_workspace=True when gradients are needed"
        )
    x, h0, c0 = args["x"], args["h0"], args["c0"]
    grad_output = grad_output if grad_output is not None else torch.zeros_like(output)
    grad_h_n = grad_h_n if grad_h_n is not None else torch.zeros_like(h0)
    grad_c_n = grad_c_n if grad_c_n is not None else torch.zeros_like(c0)
    mask = [needs[n] for n in ("x", "h0", "c0", "w_ih", "w_hh")] + [needs["b_ih"] or needs["b_hh"]] + [
        needs[n] for n in ("w_hr", "peephole", "ln_ih_w", "ln_ih_b", "ln_hh_w", "ln_hh_b", "ln_c_w", "ln_c_b")
    ]
    # the C++ kernel called directly when its forward was (_CppLayerFunction), unless this backward is traced
    # (compiled autograd), runs under a dispatch mode or gets batched gradients (``is_grads_batched``, whose legacy
    # vmap needs the operator's batching fallback): then, like every other call, through the operator
    direct = (getattr(ctx, "direct", False) and _plain_eager("cpu", (grad_output, grad_h_n, grad_c_n))
              and not any(torch._C._functorch.is_legacy_batchedtensor(g) for g in (grad_output, grad_h_n, grad_c_n)))
    backward = _cpp.backward if direct else torch.ops.lstmkit.lstm_layer_backward
    if direct:
        grad_output, grad_h_n, grad_c_n = grad_output.contiguous(), grad_h_n.contiguous(), grad_c_n.contiguous()
    with fused.use_matmul(ctx.matmul):
        grads = dict(zip(GRADIENTS, backward(
            grad_output, grad_h_n, grad_c_n, x, h0, c0, args["w_ih"], args["w_hh"], args["w_hr"],
            args["batch_sizes"], reverse, args["peephole"], args["ln_ih_w"], args["ln_ih_b"], args["ln_hh_w"],
            args["ln_hh_b"], args["ln_c_w"], args["ln_c_b"], args["recurrent_mask"], args["zoneout_h_mask"],
            args["zoneout_c_mask"], zoneout_h, zoneout_c, cell_clip, output, *workspace, mask,
        )))
    grads["b_ih"] = grads["bias"] if needs["b_ih"] else None
    grads["b_hh"] = grads["bias"] if needs["b_hh"] else None
    return tuple(grads.get(n) if needs[n] and grads.get(n) is not None and grads[n].numel() else None
                 for n in _INPUTS)


def _backward_through_reference(args, options, needs, grads_out):
    """Gradients by :func:`torch.func.vjp` through :func:`lstm_layer_ref` on the same inputs: slower, but
    differentiable (double backward), and right inside and after torch.func transforms, whose saved tensors
    autograd cannot differentiate once the transform's level has exited (``torch.func.vjp``'s function)."""
    reverse, zoneout_h, zoneout_c, cell_clip = options
    names = [n for n in _TENSOR_INPUTS if needs[n] and args[n] is not None]

    def layer(*differentiated):
        a = dict(args, **dict(zip(names, differentiated)))
        output, (h_n, c_n) = lstm_layer_ref(
            a["x"], (a["h0"], a["c0"]), a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["w_hr"], reverse=reverse,
            batch_sizes=a["batch_sizes"], variant=_variant(a, zoneout_h, zoneout_c, cell_clip),
        )
        return output, h_n, c_n

    outs, vjp = torch.func.vjp(layer, *(args[n] for n in names))
    found = dict(zip(names, vjp(tuple(g if g is not None else torch.zeros_like(o) for o, g in zip(outs, grads_out)))))
    return tuple(found.get(n) for n in _INPUTS)


def _variant(args, zoneout_h, zoneout_c, cell_clip) -> Variant:
    pair = lambda w, b: (w, b) if w is not None else None  # noqa: E731
    return Variant(
        peephole=args["peephole"], ln_ih=pair(args["ln_ih_w"], args["ln_ih_b"]),
        ln_hh=pair(args["ln_hh_w"], args["ln_hh_b"]), ln_c=pair(args["ln_c_w"], args["ln_c_b"]),
        recurrent_mask=args["recurrent_mask"],
        zoneout_h=args["zoneout_h_mask"] if args["zoneout_h_mask"] is not None else zoneout_h,
        zoneout_c=args["zoneout_c_mask"] if args["zoneout_c_mask"] is not None else zoneout_c,
        cell_clip=cell_clip,
    )


lstm_layer_op.register_autograd(_backward, setup_context=_setup_context)


class _LayerFunction(torch.autograd.Function):
    """``lstmkit::lstm_layer`` with the same autograd formula, called from outside the operator (its forward runs
    the operator without grad). Two uses:

    - torch.func transforms (``grad``, ``vjp``, ``jacrev``): the autograd.Function that ``custom_op`` generates
      has no ``setup_context``, so functorch refuses it. functorch differentiates with the graph kept (transforms
      nest), so the backward runs through the reference equations, as for double backward: right, and slower than
      the fused backward.
    - plain eager training on the Python kernel or under CPU autocast (on the C++ kernel without autocast,
      :class:`_CppLayerFunction`, cheaper still): the autograd formula registered on the operator costs more per
      call than this Function. torch 2.13's generated forward fills the schema's defaults back in before
      ``setup_context`` with ``torch._library.utils.fill_defaults``, which re-reads ``schema.arguments`` (a fresh
      list each time) once per argument: quadratic in the 27 arguments, ~0.2-0.4 ms a call, a tenth of a whole
      training step at T=35 B=16 H=128 (pytorch/pytorch#195110 makes it linear; benchmarks/RESULTS.md, "Session 7:
      the operator's call overhead"); under CPU autocast too, with the inputs cast first as the operator's autocast
      rule would. compile, export, other devices' autocast and tracing modes keep the operator, whose formula is the
      same.
    """

    @staticmethod
    def forward(*inputs):
        return torch.ops.lstmkit.lstm_layer(*inputs)

    setup_context = staticmethod(_setup_context)
    backward = staticmethod(_backward)


class _CppLayerFunction(torch.autograd.Function):
    """Plain eager training on the C++ kernel (CPU, no autocast): the same formula as
    :class:`_LayerFunction`, with both halves calling the extension directly instead of through the operators.
    Measured per training call at T=1 B=1 H=8 (2 threads, benchmarks/RESULTS.md "Session 8: fixed costs of a small
    training step"): the operators' dispatch (custom_op's autograd and backend wrappers, the aliasing check of the
    outputs, one redispatch each way) and ``Function.apply``'s binding of default arguments through
    ``inspect.signature`` (done for every Function with a ``setup_context``) were the largest Python items left.
    Not usable under torch.func (it has no ``setup_context``, so functorch refuses it) or CPU autocast (the
    operator's autocast rule also keeps autocast out of the kernel's own ATen calls): :class:`_LayerFunction`
    serves those."""

    @staticmethod
    def forward(ctx, *inputs):
        output = tuple(_cpp.forward(*inputs))
        _setup_context(ctx, inputs, output)
        ctx.direct = True
        return output

    backward = staticmethod(_backward)


torch.library.register_autocast("lstmkit::lstm_layer", "cpu", torch.bfloat16)


# ---------------------------------------------------------------------------------------------------- entry point


def _plain_eager(device_type: str, tensors) -> bool:
    """Whether this call runs in plain eager PyTorch: not traced by torch.compile or torch.export, no autocast but
    CPU's (whose rule :func:`lstm_layer_fused` applies itself: the operator's autocast rule must see the inputs
    before autograd does), no dispatch or function mode (FakeTensor, make_fx, FlopCounterMode, ...), no tensor
    subclass."""
    if (torch.compiler.is_compiling() or (torch.is_autocast_enabled(device_type) and device_type != "cpu")
            or is_in_torch_dispatch_mode() or torch._C._len_torch_function_stack()):
        return False
    return all(t is None or type(t) is Tensor or type(t) is torch.nn.Parameter for t in tensors)


def lstm_layer_fused(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    *,
    reverse: bool = False,
    batch_sizes: Tensor | list[int] | None = None,
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """Same contract as :func:`lstmkit.ops.reference.lstm_layer_ref`, computed by ``lstmkit::lstm_layer``."""
    h0, c0 = hx
    if batch_sizes is not None and not isinstance(batch_sizes, Tensor):
        batch_sizes = torch.tensor([int(s) for s in batch_sizes], dtype=torch.int64)
    v = variant
    ln_ih = v.ln_ih or (None, None)
    ln_hh = v.ln_hh or (None, None)
    ln_c = v.ln_c or (None, None)
    zone_h = v.zoneout_h if isinstance(v.zoneout_h, Tensor) else None
    zone_c = v.zoneout_c if isinstance(v.zoneout_c, Tensor) else None
    tensors = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, v.peephole, *ln_ih, *ln_hh, *ln_c)
    need_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    # torch.func (a private flag, the one autograd.Function.apply checks) and plain eager training: the Function
    # above; otherwise (no grad, torch.compile, torch.export, other devices' autocast, tracing modes) the operator
    functorch = torch._C._are_functorch_transforms_active()
    plain = not functorch and _plain_eager(x.device.type, tensors)
    through_function = functorch or (need_grad and plain)
    layer = _LayerFunction.apply if through_function else torch.ops.lstmkit.lstm_layer
    if plain and not need_grad and not torch.is_autocast_enabled(x.device.type):
        # a call without grad in plain eager code goes straight to the kernel (C++ or Python): the operator's dispatch
        # (custom_op's autograd and backend wrappers, the aliasing check of 13 outputs, a redispatch) was ~0.1 ms of
        # a ~1 ms eval call, and its first call imports torch._dynamo, about a second (benchmarks/RESULTS.md,
        # "Session 10")
        layer = _kernels(x)[0]
    elif plain and need_grad and x.device.type == "cpu" and not torch.is_autocast_enabled("cpu") \
            and fused_backend() == "cpp":
        layer = _CppLayerFunction.apply  # plain eager CPU training on the C++ kernel: both halves called directly
    args = (
        x.contiguous(), h0.contiguous(), c0.contiguous(), w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, bool(reverse),
        v.peephole, *ln_ih, *ln_hh, *ln_c, v.recurrent_mask,
        zone_h.contiguous() if zone_h is not None else None, zone_c.contiguous() if zone_c is not None else None,
        0.0 if zone_h is not None else float(v.zoneout_h), 0.0 if zone_c is not None else float(v.zoneout_c),
        None if v.cell_clip is None else float(v.cell_clip), need_grad,
    )
    if through_function and not functorch and torch.is_autocast_enabled("cpu") and x.device.type == "cpu":
        # the operator's CPU autocast rule (register_autocast above), applied before the Function records the call,
        # so that autocast training also skips the generated Function's per-call cost (every floating-point tensor
        # argument in bfloat16; inside, the rule finds nothing left to cast)
        args = tuple(a.to(torch.bfloat16) if isinstance(a, Tensor) and a.is_floating_point() else a for a in args)
    result = layer(*args)
    return result[0], (result[1], result[2])


# ---------------------------------------------------------------------------------------------------- packed zeros


@torch.library.custom_op("lstmkit::packed_zero_state", mutates_args=())
def packed_zero_state(batch_sizes: Tensor, like: Tensor, layers: int, proj: int, hidden: int) -> tuple[Tensor, Tensor]:
    """Zero initial states ``(h_0 (layers, B, proj), c_0 (layers, B, hidden))`` for packed data whose batch size B
    is ``batch_sizes[0]``, in ``like``'s dtype and device. An operator because B is a value of ``batch_sizes``:
    read in Python under torch.compile it is a graph break, and under torch.export an error; here its fake kernel
    makes B a new symbolic size, which the LSTM's operators carry to h_n and c_n (a sorted PackedSequence without
    h_0: :meth:`lstmkit.LSTM.forward`)."""
    batch = int(batch_sizes[0])
    if batch < 1:
        raise ValueError(f"batch_sizes[0] must be at least 1, got {batch}")
    return like.new_zeros(layers, batch, proj), like.new_zeros(layers, batch, hidden)


@packed_zero_state.register_fake
def _(batch_sizes, like, layers, proj, hidden):
    batch = torch.library.get_ctx().new_dynamic_size(min=1)  # a PackedSequence holds at least one sequence
    return like.new_empty(layers, batch, proj), like.new_empty(layers, batch, hidden)
