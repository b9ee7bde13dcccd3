"""Writes an all-float16 copy of micro-latent's VAE (weights, activations, input and output in f16), as the fp16
ONNX exports of Stable Diffusion's VAE that web ports ship: src/models/fixtures/micro-latent-f16/.

    apt-get install python3-onnx && /usr/bin/python3 tools/reference/make_f16_vae.py

The studio feeds such a part float16 and reads float16 back (src/models/codec.ts); latent.gpu.test.ts checks the
copy against the float32 golden within f16 rounding. Only this script needs the onnx package; the test reads the
committed files. The conversion is deterministic: rerunning rewrites the same bytes.
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(ROOT, 'public', 'models', 'micro-latent')
OUT = os.path.join(ROOT, 'src', 'models', 'fixtures', 'micro-latent-f16')

# Inputs the ONNX spec keeps in float32 whatever the data type (Resize's roi and scales).
FLOAT32_INPUTS = {'Resize': {1, 2}}


def to_f16(t):
    """A float32 TensorProto as float16, same name."""
    return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)


def convert(model):
    g = model.graph
    keep = {name for n in g.node for i, name in enumerate(n.input) if i in FLOAT32_INPUTS.get(n.op_type, ())}
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            g.initializer[i].CopyFrom(to_f16(t))
    for n in g.node:
        if n.op_type == 'Constant' and n.output[0] not in keep:
            for a in n.attribute:
                if a.name == 'value' and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(to_f16(a.t))
        elif n.op_type == 'ConstantOfShape':
            for a in n.attribute:
                if a.name == 'value' and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(to_f16(a.t))
        elif n.op_type == 'Cast':
            for a in n.attribute:
                if a.name == 'to' and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ('vae_encoder.onnx', 'vae_decoder.onnx'):
        model = convert(onnx.load(os.path.join(SRC, name)))
        onnx.save(model, os.path.join(OUT, name))
        print(f'{name}: {os.path.getsize(os.path.join(OUT, name))} bytes', file=sys.stderr)


if __name__ == '__main__':
    main()
