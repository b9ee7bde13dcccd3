// Checks that text_encoder.onnx loads and runs in onnxruntime-web (WASM) under Node and matches the torch values
// that export_default.py recorded. Usage: node tools/reference/verify_onnx.mjs [model_dir] [check.json]
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ort from 'onnxruntime-web';

const modelDir = resolve(process.argv[2] ?? 'public/models/emoji-tiny');
const checkPath = resolve(process.argv[3] ?? 'tools/reference/golden/text_encoder_check.json');
const check = JSON.parse(readFileSync(checkPath, 'utf8'));
ort.env.wasm.numThreads = 1;

const session = await ort.InferenceSession.create(readFileSync(`${modelDir}/text_encoder.onnx`));
const [batch, length] = [check.input_ids.length, check.input_ids[0].length];
const ids = BigInt64Array.from(check.input_ids.flat().map((v) => BigInt(v)));
const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [batch, length]) });
const y = out.last_hidden_state;
const dim = y.dims[2];
let maxErr = 0;
let k = 0;
for (let b = 0; b < batch; b++) {
  for (let s = 0; s < length; s++) {
    for (let c = 0; c < 8; c++) {
      maxErr = Math.max(
        maxErr,
        Math.abs(y.data[(b * length + s) * dim + c] - check.last_hidden_state_first8[k++]),
      );
    }
  }
}
const sum = y.data.reduce((a, v) => a + v, 0);
console.log(`inputs ${session.inputNames} outputs ${session.outputNames} dims ${y.dims}`);
console.log(
  `max |ort - torch| over first 8 channels: ${maxErr.toExponential(2)}; sum ${sum} vs ${check.last_hidden_state_sum}`,
);
if (!(maxErr < 1e-4) || JSON.stringify(y.dims) !== JSON.stringify(check.shape)) process.exit(1);
