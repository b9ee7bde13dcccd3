// A minimal ONNX protobuf writer for the kernel benchmark: enough of ModelProto to express one small
// graph (MatMul, Conv, Softmax, …) with float32 inputs, so onnxruntime-web can run it with no files.

/** Protobuf wire encoding: varints, length-delimited fields, packed repeated int64. */
class Writer {
  private bytes: number[] = [];

  private varint(v: number): void {
    // Values here are small non-negative integers (< 2^53), so plain arithmetic is exact.
    let n = v;
    while (n >= 0x80) {
      this.bytes.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.bytes.push(n);
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, v: number): this {
    if (v < 0) throw new Error('onnx writer: negative varints are not needed here');
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  bytesField(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    for (const b of data) this.bytes.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  message(field: number, w: Writer): this {
    return this.bytesField(field, w.finish());
  }

  packedInts(field: number, vs: readonly number[]): this {
    const inner = new Writer();
    for (const v of vs) inner.varint(v);
    return this.bytesField(field, inner.finish());
  }

  finish(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

export type OnnxAttribute = { name: string; ints: readonly number[] } | { name: string; int: number };

export interface OnnxNode {
  opType: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attributes?: readonly OnnxAttribute[];
}

export interface OnnxValue {
  name: string;
  shape: readonly number[];
}

export interface OnnxGraph {
  name: string;
  nodes: readonly OnnxNode[];
  inputs: readonly OnnxValue[];
  outputs: readonly OnnxValue[];
  opset?: number;
}

const FLOAT = 1; // TensorProto.DataType.FLOAT
const ATTR_INT = 2;
const ATTR_INTS = 7;

function valueInfo(v: OnnxValue): Writer {
  const shape = new Writer();
  for (const d of v.shape) shape.message(1, new Writer().int(1, d)); // Dimension.dim_value
  const tensorType = new Writer().int(1, FLOAT).message(2, shape); // elem_type, shape
  const type = new Writer().message(1, tensorType); // TypeProto.tensor_type
  return new Writer().string(1, v.name).message(2, type);
}

function attribute(a: OnnxAttribute): Writer {
  const w = new Writer().string(1, a.name);
  if ('ints' in a) return w.packedInts(8, a.ints).int(20, ATTR_INTS);
  return w.int(3, a.int).int(20, ATTR_INT);
}

/** Serialized ModelProto (IR version 8) of a graph whose every input is a float32 graph input. */
export function onnxModel(g: OnnxGraph): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => {
    const node = new Writer();
    for (const s of n.inputs) node.string(1, s);
    for (const s of n.outputs) node.string(2, s);
    node.string(3, `${n.opType.toLowerCase()}_${i}`).string(4, n.opType);
    for (const a of n.attributes ?? []) node.message(5, attribute(a));
    graph.message(1, node);
  });
  graph.string(2, g.name);
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  return new Writer()
    .int(1, 8) // ir_version
    .string(2, 'lora2-bench') // producer_name
    .message(7, graph)
    .message(8, new Writer().string(1, '').int(2, g.opset ?? 17)) // opset_import (default domain)
    .finish();
}
