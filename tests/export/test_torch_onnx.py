"""torch.onnx.export (dynamo) of a model of one's own with lstmkit.LSTM layers, through
lstmkit.export.onnx_translation_table."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch

import lstmkit
from lstmkit.export import onnx_translation_table


class Net(torch.nn.Module):
    def __init__(self, **options):
        super().__init__()
        self.embedding = torch.nn.Embedding(30, 6)
        self.lstm = lstmkit.LSTM(6, 8, batch_first=True, **options)
        directions = 2 if options.get("bidirectional") else 1
        self.out = torch.nn.Linear(8 * directions, 5)

    def forward(self, ids):
        return self.out(self.lstm(self.embedding(ids))[0])


def export(model):
    batch, steps = torch.export.Dim("B", min=1, max=1024), torch.export.Dim("T", min=1, max=1024)
    return torch.onnx.export(model.eval(), (torch.randint(30, (3, 5)),), dynamo=True, verbose=False,
                             dynamic_shapes=({0: batch, 1: steps},), custom_translation_table=onnx_translation_table())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_own_model_with_plain_and_peephole_layers_runs_in_onnxruntime():
    torch.manual_seed(0)
    model = Net(num_layers=2, bidirectional=True, peephole=True)
    program = export(model)
    assert [n.op_type for n in program.model_proto.graph.node].count("LSTM") == 4  # layers x directions
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for shape in ((2, 9), (1, 1), (4, 3)):
        ids = torch.randint(30, shape)
        with torch.no_grad():
            want = model(ids)
        got = session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_a_variant_is_refused_with_the_way_out():
    with pytest.raises(Exception, match="cannot express lstmkit.LSTM's layer_norm.*lstmkit.export.lstm_model"):
        export(Net(layer_norm=True))
