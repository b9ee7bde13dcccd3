// Shows the worker's GPU adapter, its features and limits, and the compute self-test result.
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
  const error = useGpuStore((s) => s.error);
  const selfTest = useGpuStore((s) => s.selfTest);

  if (phase === 'starting')
    return (
      <section className="panel" data-testid="gpu-starting">
        Starting the GPU worker…
      </section>
    );
  if (phase !== 'ready' || !info) {
    return (
      <section className="panel error" role="alert" data-testid="gpu-error">
        <h2>WebGPU is not available</h2>
        <p>{error?.message}</p>
        {error && 'advice' in error && error.advice ? <p className="advice">{error.advice}</p> : null}
      </section>
    );
  }
  return (
    <section className="panel" data-testid="gpu-panel">
      <h2>GPU</h2>
      <p className="adapter" data-testid="adapter-name">
        {info.name}
        {info.adapter.isFallback ? <span className="tag">software</span> : null}
      </p>
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
      <p data-testid="selftest" data-ok={selfTest ? String(selfTest.ok) : 'pending'}>
        {!selfTest
          ? 'Running compute self-test…'
          : selfTest.ok
            ? `Self-test passed: ${selfTest.what}, max error ${selfTest.maxAbsError.toExponential(1)}, ${selfTest.elapsedMs.toFixed(0)} ms`
            : `Self-test FAILED: ${selfTest.error?.message ?? `max error ${selfTest.maxAbsError}`}`}
      </p>
    </section>
  );
}
