// Float64 CPU reference for NCHW channel concat and split.

export function concatChannelsRef(
  parts: Float64Array[],
  channels: number[],
  batch: number,
  hw: number,
): Float64Array {
  const total = channels.reduce((a, b) => a + b, 0);
  const out = new Float64Array(batch * total * hw);
  for (let n = 0; n < batch; n++) {
    let c0 = 0;
    parts.forEach((p, k) => {
      for (let c = 0; c < channels[k]; c++) {
        for (let s = 0; s < hw; s++) out[(n * total + c0 + c) * hw + s] = p[(n * channels[k] + c) * hw + s];
      }
      c0 += channels[k];
    });
  }
  return out;
}

export function splitChannelsRef(
  x: Float64Array,
  channels: number[],
  batch: number,
  hw: number,
): Float64Array[] {
  const total = channels.reduce((a, b) => a + b, 0);
  let c0 = 0;
  return channels.map((ck) => {
    const part = new Float64Array(batch * ck * hw);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < ck; c++) {
        for (let s = 0; s < hw; s++) part[(n * ck + c) * hw + s] = x[(n * total + c0 + c) * hw + s];
      }
    }
    c0 += ck;
    return part;
  });
}
