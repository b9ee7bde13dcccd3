"""The text encoder's torch weights, read back from the shipped text_encoder.onnx.

The ONNX file is the only copy committed (the training checkpoint in .data/ is not), so sample.py and the tools
built on it take the torch encoder from here. torch.onnx.export names most initializers after their parameters; the Linear weights
become anonymous transposed MatMul initializers (`onnx::MatMul_N`, in graph order: qkv, proj, fc1, fc2 of each
layer) and the position embedding a [1, L, D] slice input. A minimal protobuf reader (no onnx package needed) maps
them back, and `check()` runs the result on the ids torch encoded at export and compares with its output.

Usage: python3 tools/reference/onnx_weights.py [--out weights.safetensors]   (checks; --out also saves)
"""

import argparse
import os
import re
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HERE, MODEL_DIR  # noqa: E402
from st_io import load_file, save_file  # noqa: E402
from text import TextEncoder  # noqa: E402

_FLOAT = 1  # TensorProto.DataType.FLOAT


def _varint(b, i):
    result = shift = 0
    while True:
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return result, i


def _fields(b):
    """(field number, wire type, value) of one protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = b[i:i + 8], i + 8
        elif wire == 5:
            value, i = b[i:i + 4], i + 4
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        else:
            raise ValueError(f'unsupported protobuf wire type {wire}')
        yield field, wire, value


def _varints(wire, value):
    """A repeated varint field's values: one varint (wire 0) or a packed run (wire 2)."""
    if wire == 0:
        return [value]
    out, j = [], 0
    while j < len(value):
        d, j = _varint(value, j)
        out.append(d)
    return out


def _tensor(b):
    """TensorProto → (name, float32 array). Only FLOAT tensors with raw_data or float_data."""
    name, dims, dtype, raw, floats = None, [], None, None, []
    for field, wire, value in _fields(b):
        if field == 1:  # dims
            dims.extend(_varints(wire, value))
        elif field == 2:
            dtype = value
        elif field == 4:  # float_data: packed (wire 2) or one float (wire 5), both little-endian f32 bytes
            floats.append(np.frombuffer(value, dtype='<f4'))
        elif field == 8:
            name = value.decode()
        elif field == 9:
            raw = value
    if dtype != _FLOAT:
        raise ValueError(f'{name}: data type {dtype}, expected FLOAT')
    data = np.frombuffer(raw, dtype='<f4') if raw is not None else np.concatenate(floats)
    return name, data.reshape(dims).copy()


def _graph(path):
    with open(path, 'rb') as f:
        model = f.read()
    graphs = [v for field, _, v in _fields(model) if field == 7]
    if len(graphs) != 1:
        raise ValueError(f'{path}: expected one graph, found {len(graphs)}')
    return graphs[0]


def _nodes(graph):
    """Each NodeProto of the graph as (op_type, inputs, outputs, the TensorProto of its attribute `t` or None)."""
    for field, _, node in _fields(graph):
        if field != 1:
            continue
        inputs, outputs, op, tensor = [], [], None, None
        for f, _, v in _fields(node):
            if f == 1:
                inputs.append(v.decode())
            elif f == 2:
                outputs.append(v.decode())
            elif f == 4:
                op = v.decode()
            elif f == 5:  # AttributeProto: its t (field 5) is a Constant's TensorProto
                tensor = next((t for af, _, t in _fields(v) if af == 5), tensor)
        yield op, inputs, outputs, tensor


def _int_constants(graph):
    """The graph's Constant nodes holding one int64, by output name (torch.onnx.export writes reshape sizes so)."""
    out = {}
    for op, _, outputs, tensor in _nodes(graph):
        if op != 'Constant' or tensor is None or len(outputs) != 1:
            continue
        dtype = raw = None
        ints = []
        for f, wire, v in _fields(tensor):
            if f == 2:
                dtype = v
            elif f == 9:
                raw = v
            elif f == 7:  # int64_data
                ints.extend(_varints(wire, v))
        if dtype == 7:  # INT64
            values = np.frombuffer(raw, dtype='<i8').tolist() if raw is not None else ints
            if len(values) == 1:
                out[outputs[0]] = values[0]
    return out


def attention_heads(path):
    """The encoder's head count, which no weight shape carries: the first layer splits qkv with a reshape to
    [batch, length, 3, heads, dim / heads], whose constant sizes follow the 3 in the graph's Concat."""
    graph = _graph(path)
    consts = _int_constants(graph)
    for op, inputs, _, _ in _nodes(graph):
        if op != 'Concat':
            continue
        sizes = [consts.get(i) for i in inputs]
        for k in range(len(sizes) - 1):
            if sizes[k] == 3 and sizes[k + 1] is not None:
                return sizes[k + 1]
    raise ValueError(f'{path}: cannot find the attention reshape [batch, length, 3, heads, dim / heads]')


def onnx_initializers(path):
    """Every FLOAT initializer of the model's graph, by name, in file order."""
    out = {}
    for field, _, value in _fields(_graph(path)):
        if field == 5:
            name, data = _tensor(value)
            out[name] = data
    return out


def text_encoder_state_dict(path):
    """The TextEncoder state dict (text.py's names and layouts) from an exported text_encoder.onnx."""
    inits = onnx_initializers(path)
    sd = {k: torch.from_numpy(v) for k, v in inits.items() if not k.startswith('onnx::')}
    matmuls = sorted((k for k in inits if k.startswith('onnx::MatMul_')), key=lambda k: int(k.rsplit('_', 1)[1]))
    layers = sorted({int(m.group(1)) for k in sd for m in [re.match(r'layers\.(\d+)\.', k)] if m})
    names = ['qkv', 'proj', 'fc1', 'fc2']
    if len(matmuls) != len(names) * len(layers):
        raise ValueError(f'{path}: {len(matmuls)} MatMul weights for {len(layers)} layers')
    for i, key in enumerate(matmuls):
        layer, name = layers[i // len(names)], names[i % len(names)]
        w = torch.from_numpy(inits[key]).t().contiguous()  # MatMul takes x @ Wᵀ: stored [in, out]
        bias = sd[f'layers.{layer}.{name}.bias']
        if w.shape[0] != bias.shape[0]:
            raise ValueError(f'{key} → layers.{layer}.{name}.weight: shape {list(w.shape)} vs bias {list(bias.shape)}')
        sd[f'layers.{layer}.{name}.weight'] = w
    pos = [k for k in inits if k.startswith('onnx::') and inits[k].ndim == 3 and inits[k].shape[0] == 1]
    if len(pos) != 1:
        raise ValueError(f'{path}: cannot tell the position embedding ({pos})')
    sd['position_embedding'] = torch.from_numpy(inits[pos[0]][0])
    return sd


def load_text_encoder(path):
    sd = text_encoder_state_dict(path)
    vocab, dim = sd['token_embedding.weight'].shape
    layers = sum(1 for k in sd if k.endswith('qkv.weight'))
    text = TextEncoder(vocab, dim=dim, layers=layers, heads=attention_heads(path),
                       max_length=sd['position_embedding'].shape[0])
    missing = sorted(set(text.state_dict()) - set(sd))
    if missing:
        # An untrained export (the seeded micro models) has LayerNorms still at ones and zeros, which the exporter
        # merges into shared anonymous initializers: their names, and so the weights' places, are gone.
        raise ValueError(f'{path}: no initializer named {", ".join(missing)} (an untrained export merges identical '
                         'LayerNorm weights); only trained encoders such as emoji-tiny\'s can be read back')
    text.load_state_dict(sd)
    return text.eval()


@torch.no_grad()
def check(text):
    """Relative error against torch's own output at export (golden/emoji_tiny_forward.safetensors)."""
    golden = load_file(os.path.join(HERE, 'golden', 'emoji_tiny_forward.safetensors'))
    want = golden['inputs.encoder_hidden_states'].float()
    got = text(golden['inputs.input_ids'].long())
    return ((got - want).norm() / want.norm()).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--model', default=MODEL_DIR)
    ap.add_argument('--out', default=None, help='also save the weights as safetensors here')
    args = ap.parse_args()
    path = os.path.join(args.model, 'text_encoder.onnx')
    text = load_text_encoder(path)
    err = check(text)
    print(f'text encoder from {path}: rel. error vs torch at export {err:.2e}')
    if err > 1e-5:
        sys.exit('the weights read from ONNX do not reproduce the exported encoder')
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        save_file({k: v.contiguous() for k, v in text.state_dict().items()}, args.out)
        print('wrote', args.out)


if __name__ == '__main__':
    main()
