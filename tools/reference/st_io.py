"""Tiny safetensors reader/writer (no safetensors package here): 8-byte LE header length, JSON header, raw LE data."""

import json
import struct

import numpy as np
import torch

DTYPES = {'F32': np.float32, 'F16': np.float16, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def save_file(tensors, path, metadata=None):
    """tensors: name -> torch.Tensor or np.ndarray; written in sorted name order, header padded to 8 bytes."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        a = t.detach().cpu().contiguous().numpy() if torch.is_tensor(t) else np.ascontiguousarray(t)
        a = a.astype(a.dtype.newbyteorder('<'), copy=False)
        data = a.tobytes()
        header[name] = {'dtype': NAMES[a.dtype], 'shape': list(a.shape), 'data_offsets': [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load_file(path):
    """name -> torch.Tensor (float16 is widened to float32 only if asked by the caller)."""
    with open(path, 'rb') as f:
        raw = f.read()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        a, b = info['data_offsets']
        arr = np.frombuffer(raw[base + a : base + b], dtype=DTYPES[info['dtype']]).reshape(info['shape'])
        out[name] = torch.from_numpy(arr.copy())
    return out
