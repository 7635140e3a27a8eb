"""torch.export (lstmkit.export.pt2): programs with a symbolic length and batch equal eager at other lengths,
and survive torch.export.save / load."""

from __future__ import annotations

import io

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence

import lstmkit
from export_cases import OPTIONS, lstm_inputs, tagger_sentences
from lstmkit.tagger.data import TaggingVocabs, encode_sentences, make_batch
from lstmkit.export import (
    METADATA_FILE,
    ExportError,
    LSTMWithLengths,
    export_language_model,
    export_lstm,
    export_tagger,
    program_bytes,
)
from lstmkit.lm import LanguageModel, LanguageModelConfig
from lstmkit.tagger import Tagger, TaggerConfig

SIZES = ((9, 4, 1), (1, 1, 2))  # (T, B, seed): other than the example's (3, 2), T = 1 and B = 1 included


def close(actual, expected, name: str) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6, msg=lambda message: f"{name}: {message}")


def reload(program, metadata=None):
    extra = {METADATA_FILE: ""}
    loaded = torch.export.load(io.BytesIO(program_bytes(program, metadata)), extra_files=extra)
    return loaded, extra[METADATA_FILE]


def layer_nodes(program) -> list:
    return [node for node in program.graph.nodes if node.op == "call_function" and "lstm" in str(node.target)]


@pytest.mark.parametrize("name", list(OPTIONS))
def test_lstm_program_matches_eager_at_other_lengths(name):
    torch.manual_seed(0)
    module = lstmkit.LSTM(5, 6, **OPTIONS[name]).eval()
    directions = 2 if module.bidirectional else 1
    plain, _ = reload(export_lstm(module))
    packed = export_lstm(module, lengths=True)
    layers = layer_nodes(packed)  # one operator node per layer and direction, nothing unrolled
    assert [node.target for node in layers] == [torch.ops.lstmkit.lstm_layer.default] * (module.num_layers * directions)
    assert all(node.args[-1] is False for node in layers)  # need_workspace: inference keeps nothing for a backward
    for T, B, seed in SIZES:
        x, hx, lengths = lstm_inputs(module, T, B, seed)
        with torch.no_grad():
            want, (want_h, want_c) = module(x, hx)
            got, (got_h, got_c) = plain.module()(x, hx)
            for a, e, what in ((got, want, "output"), (got_h, want_h, "h_n"), (got_c, want_c, "c_n")):
                close(a, e, f"{name} T={T} B={B} {what}")
            out, (h_n, c_n) = module(pack_padded_sequence(x, lengths, batch_first=module.batch_first,
                                                          enforce_sorted=False), hx)
            out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
            for a, e, what in zip(packed.module()(x, lengths, *hx), (out, h_n, c_n), ("output", "h_n", "c_n")):
                close(a, e, f"{name} T={T} B={B} {what} (lengths)")


class _PackedLSTM(torch.nn.Module):
    """An lstmkit.LSTM called with a PackedSequence made of the program's inputs (its data and batch sizes)."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm

    def forward(self, data, batch_sizes, sorted_indices=None, unsorted_indices=None):
        out, (h_n, c_n) = self.lstm(PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices))
        return out.data, h_n, c_n


PACKED_CASES = {  # (impl, options, sorted): reference and native with few options, each of their scans costs seconds
    "sorted": ("auto", OPTIONS["everything"], True),
    "unsorted": ("auto", OPTIONS["everything"], False),
    "reference-unsorted": ("reference", dict(bidirectional=True, peephole=True, zoneout=0.2), False),
    "native-sorted": ("native", dict(bidirectional=True, proj_size=4, forget_bias=1.0), True),
}


@pytest.mark.parametrize("case", list(PACKED_CASES))
def test_packed_sequence_program_matches_eager_at_other_batches(case):
    """A PackedSequence without h_0 exports with a symbolic length and number of rows, sorted (the batch size is
    then a value of batch_sizes, read by lstmkit::packed_zero_state) or not; run on other batches, saved and loaded."""
    impl, options, sorted_ = PACKED_CASES[case]
    torch.manual_seed(0)
    module = lstmkit.LSTM(3, 6, impl=impl, **options).eval()
    rows, steps = torch.export.Dim("N", min=1), torch.export.Dim("T", min=1)

    def pack(lengths, seed):
        g = torch.Generator().manual_seed(seed)
        return pack_sequence([torch.randn(n, 3, generator=g) for n in lengths], enforce_sorted=sorted_)

    example = pack((5, 3, 2) if sorted_ else (3, 5, 2), 0)
    args = (example.data, example.batch_sizes) + (() if sorted_ else (example.sorted_indices, example.unsorted_indices))
    batch = torch.export.Dim("B", min=1)
    dynamic = ({0: rows}, {0: steps}) + (() if sorted_ else ({0: batch}, {0: batch}))
    with torch.no_grad():  # inference, as lstmkit.export exports (a scan traced with grad takes 3x longer)
        program, _ = reload(torch.export.export(_PackedLSTM(module), args, dynamic_shapes=dynamic))
    for lengths, seed in (((7, 7, 4, 1), 1), ((1,), 2), ((2, 6), 3)):
        packed = pack(lengths if not sorted_ else sorted(lengths, reverse=True), seed)
        args = (packed.data, packed.batch_sizes) + (() if sorted_ else (packed.sorted_indices, packed.unsorted_indices))
        with torch.no_grad():
            out, (h_n, c_n) = module(packed)
            got = program.module()(*args)
        for a, e, what in zip(got, (out.data, h_n, c_n), ("output", "h_n", "c_n")):
            close(a, e, f"lengths {lengths} {what}")


# impl 'reference' and 'native' export each layer as one scan node, whose tracing takes 0.3-0.5 s: so each impl
# exports all its options at once (native: those torch's kernel computes), with bias=False; with biases in the
# PackedSequence cases above and in test_torch_lstm_fails_where_every_impl_exports
SCAN_CASES = {
    "reference-everything": ("reference", dict(OPTIONS["everything"], bias=False)),
    "native-everything": ("native", dict(num_layers=2, bidirectional=True, proj_size=4, batch_first=True, dropout=0.1,
                                         weight_dropout=0.3, bias=False)),
}


class _BothForms(torch.nn.Module):
    """The module's own forward and :class:`LSTMWithLengths` in one program: one export per case, as tracing the
    scans is what takes the time."""

    def __init__(self, lstm):
        super().__init__()
        self.lstm = lstm
        self.with_lengths = LSTMWithLengths(lstm)

    def forward(self, x, lengths, h0, c0):
        out, (h_n, c_n) = self.lstm(x, (h0, c0))
        return (out, h_n, c_n, *self.with_lengths(x, lengths, h0, c0))


def scan_nodes(program) -> list:
    return [node for node in program.graph.nodes if node.op == "call_function" and "scan" in str(node.target)]


@pytest.mark.parametrize("name", list(SCAN_CASES))
def test_reference_and_native_programs_match_eager_at_other_lengths(name):
    """Their Python loop over time would be unrolled at one length (pytorch#91439); under export it is torch's
    scan over the reference step, one node per layer and direction, so the program runs at any T and B: the
    module's forward equals eager (for native: torch's kernel), and with lengths equals packed eager input."""
    impl, options = SCAN_CASES[name]
    torch.manual_seed(0)
    module = lstmkit.LSTM(5, 6, impl=impl, **options).eval()
    layers = module.num_layers * (2 if module.bidirectional else 1)
    x, hx, lengths = lstm_inputs(module, 3, 2, 0)
    steps, batch = torch.export.Dim("T", min=1, max=1 << 20), torch.export.Dim("B", min=1, max=1 << 20)
    seq = {0: batch, 1: steps} if module.batch_first else {0: steps, 1: batch}
    with torch.no_grad():
        program = torch.export.export(_BothForms(module), (x, lengths, *hx),
                                      dynamic_shapes=(seq, {0: batch}, {1: batch}, {1: batch}))
    program, _ = reload(program)
    assert len(scan_nodes(program)) == 2 * layers and not layer_nodes(program)  # nothing unrolled, no kernel
    for T, B, seed in SIZES:
        x, hx, lengths = lstm_inputs(module, T, B, seed)
        with torch.no_grad():
            got = program.module()(x, lengths, *hx)
            want, (want_h, want_c) = module(x, hx)
            out, (h_n, c_n) = module(pack_padded_sequence(x, lengths, batch_first=module.batch_first,
                                                          enforce_sorted=False), hx)
        out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
        whats = ("output", "h_n", "c_n", "output (lengths)", "h_n (lengths)", "c_n (lengths)")
        for a, e, what in zip(got, (want, want_h, want_c, out, h_n, c_n), whats):
            close(a, e, f"{name} T={T} B={B} {what}")


@pytest.mark.filterwarnings("ignore:The tensor attributes self._flat_weights")  # torch.nn.LSTM under export
def test_torch_lstm_fails_where_every_impl_exports():
    """torch.nn.LSTM fails torch.export with a dynamic length (pytorch#91439); lstmkit.LSTM with torch's kernel
    exports through export_lstm (its equations in a scan), and export wants eval mode."""
    x = torch.randn(3, 2, 4)
    steps = torch.export.Dim("T", min=1, max=64)
    with pytest.raises(Exception, match="Constraints violated"):
        torch.export.export(torch.nn.LSTM(4, 5), (x,), dynamic_shapes=({0: steps},))
    native = lstmkit.LSTM(4, 5, impl="native").eval()
    program = export_lstm(native)
    assert len(scan_nodes(program)) == 1
    x, hx = torch.randn(6, 3, 4), (torch.randn(1, 3, 5), torch.randn(1, 3, 5))
    with torch.no_grad():
        close(program.module()(x, hx)[0], native(x, hx)[0], "native T=6 B=3")
    with pytest.raises(ExportError, match="call .eval"):
        export_lstm(lstmkit.LSTM(4, 5))


def test_language_model_program_saved_and_loaded():
    torch.manual_seed(0)
    lm = LanguageModel(40, LanguageModelConfig(embedding_size=8, hidden_size=12, num_layers=2)).eval()
    program, metadata = reload(export_language_model(lm), {"lstmkit.kind": "language_model"})
    assert metadata == '{"lstmkit.kind": "language_model"}'
    hidden = lm.init_hidden(3)
    words = torch.randint(40, (9, 3))
    for chunk in (words[:1], words[1:]):  # state carried from one window to the next
        with torch.no_grad():
            out = lm(chunk, hidden)
        got = program.module()(chunk, *(t for pair in hidden for t in pair))
        close(got[0], lm.logits(out.output), "logits")
        for k, (h, c) in enumerate(out.hidden):
            close(got[1 + 2 * k], h, f"h_n_{k}")
            close(got[2 + 2 * k], c, f"c_n_{k}")
        hidden = out.hidden


def test_tagger_program_matches_eager_on_ragged_batches():
    torch.manual_seed(0)
    train = tagger_sentences(30, 0)
    vocabs = TaggingVocabs.build(train)
    config = TaggerConfig(word_embedding_size=8, char_embedding_size=5, char_hidden_size=6, hidden_size=7)
    tagger = Tagger.from_vocabs(config, vocabs).eval()
    program, _ = reload(export_tagger(tagger))
    for chunk in (train[:5], tagger_sentences(6, 1), train[7:8]):
        batch = make_batch(encode_sentences(chunk, vocabs, with_tags=False), vocabs)
        with torch.no_grad():
            out = tagger(batch)
        logits, tags = program.module()(batch.word_ids, batch.lengths, batch.char_ids, batch.char_lengths,
                                        batch.word_index)
        close(logits, out.logits, "logits")
        assert torch.equal(tags, Tagger.predict(out))
