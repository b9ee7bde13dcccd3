// The GPU as a compact status chip in the header: adapter, self-test, and a details popover with features
// and limits. Without WebGPU, GpuUnavailable explains why in the page body.
import { useGpuStore } from './gpuStore';

const SHOWN_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxStorageBuffersPerShaderStage',
];

function bytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  return n.toLocaleString();
}

export function GpuPanel() {
  const phase = useGpuStore((s) => s.phase);
  const info = useGpuStore((s) => s.info);
  const selfTest = useGpuStore((s) => s.selfTest);

  if (phase === 'starting')
    return (
      <span className="chip" data-testid="gpu-starting">
        <i className="dot pending" /> Starting GPU…
      </span>
    );
  if (phase !== 'ready' || !info)
    return (
      <span className="chip bad">
        <i className="dot bad" /> No WebGPU
      </span>
    );
  const testText = !selfTest
    ? 'Running compute self-test…'
    : selfTest.ok
      ? `Self-test passed: ${selfTest.what}, max error ${selfTest.maxAbsError.toExponential(1)}, ${selfTest.elapsedMs.toFixed(0)} ms`
      : `Self-test FAILED: ${selfTest.error?.message ?? `max error ${selfTest.maxAbsError}`}`;
  const dot = !selfTest ? 'pending' : selfTest.ok ? 'ok' : 'bad';
  return (
    <details className="chip gpu" data-testid="gpu-panel">
      <summary title={testText}>
        <i className={`dot ${dot}`} />
        <span className="adapter" data-testid="adapter-name">
          {info.name}
        </span>
        {info.adapter.isFallback ? <span className="tag">software</span> : null}
        <span
          data-testid="selftest"
          data-ok={selfTest ? String(selfTest.ok) : 'pending'}
          className="selftest"
        >
          {!selfTest ? 'testing…' : selfTest.ok ? 'ready' : 'self-test failed'}
          <span className="sr-only"> {testText}</span>
        </span>
      </summary>
      <div className="popover">
        <p>{testText}</p>
        <ul className="features" data-testid="adapter-features">
          {Object.entries(info.features).map(([k, v]) => (
            <li key={k} className={v ? 'on' : 'off'}>
              {k}: {v ? 'yes' : 'no'}
            </li>
          ))}
        </ul>
        <table className="limits">
          <tbody>
            {SHOWN_LIMITS.map((k) => (
              <tr key={k}>
                <td>{k}</td>
                <td>{bytes(info.limits[k] ?? 0)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

/** Shown in the page when the worker has no GPU: what is missing and what to do. */
export function GpuUnavailable() {
  const phase = useGpuStore((s) => s.phase);
  const error = useGpuStore((s) => s.error);
  if (phase !== 'unavailable' && phase !== 'error') return null;
  return (
    <section className="panel error" role="alert" data-testid="gpu-error">
      <h2>WebGPU is not available</h2>
      <p>{error?.message}</p>
      {error && 'advice' in error && error.advice ? <p className="advice">{error.advice}</p> : null}
      <p className="advice">Photos, settings and saved sessions still work; training needs WebGPU.</p>
    </section>
  );
}
