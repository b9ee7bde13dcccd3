// A readable error (title, message, advice) with the action it calls for.
import type { ReactNode } from 'react';
import type { ReadableError } from './errorText';
import { setTab } from './studioStore';

export function ErrorBox({
  error,
  testId,
  onResume,
  onDismiss,
  tone = 'error',
}: {
  error: ReadableError;
  testId?: string;
  onResume?: () => void;
  onDismiss?: () => void;
  tone?: 'error' | 'info';
}): ReactNode {
  return (
    <div className={`errorbox ${tone}`} role={tone === 'error' ? 'alert' : 'status'} data-testid={testId}>
      <strong>{error.title}</strong>
      <p>{error.message}</p>
      {error.advice ? <p className="advice">{error.advice}</p> : null}
      <div className="row">
        {error.action === 'resume' && onResume ? (
          <button onClick={onResume}>Resume from checkpoint</button>
        ) : null}
        {error.action === 'sessions' ? (
          <button onClick={() => setTab('sessions')}>Open sessions</button>
        ) : null}
        {error.action === 'reload' ? <button onClick={() => location.reload()}>Reload</button> : null}
        {onDismiss ? (
          <button className="ghost" onClick={onDismiss}>
            Dismiss
          </button>
        ) : null}
      </div>
    </div>
  );
}
