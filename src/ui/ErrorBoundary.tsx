// Catches render errors so a failing view shows what happened and a way out, never a blank page.
import { Component, type ReactNode } from 'react';

interface Props {
  /** What this boundary wraps, for the message ("the rank heatmap"). */
  area: string;
  children: ReactNode;
}

export class ErrorBoundary extends Component<Props, { error?: Error }> {
  override state: { error?: Error } = {};

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  override componentDidCatch(error: Error): void {
    console.error(`[${this.props.area}]`, error);
  }

  override render(): ReactNode {
    const { error } = this.state;
    if (!error) return this.props.children;
    return (
      <section className="panel error crash" role="alert" data-testid="crash">
        <h2>Part of the studio stopped working</h2>
        <p>
          {this.props.area} hit an error: <code>{error.message}</code>
        </p>
        <p className="advice">Your photos, settings and training history are saved in this browser.</p>
        <div className="row">
          <button onClick={() => this.setState({ error: undefined })}>Try again</button>
          <button className="ghost" onClick={() => location.reload()}>
            Reload the page
          </button>
        </div>
        {error.stack ? (
          <details>
            <summary>Details</summary>
            <pre>{error.stack}</pre>
          </details>
        ) : null}
      </section>
    );
  }
}
