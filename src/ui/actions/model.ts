// Model actions: ask the worker what it can do, then load the session's model (the embedded default).
import { DEFAULT_MODEL_URL } from '../../train/sessionStore';
import { describeError, TrainerMissingError } from '../errorText';
import { trainer } from '../trainerClient';
import { trainerCapabilities } from '../trainerCaps';
import { useStudio } from '../studioStore';

export async function loadCapabilities(): Promise<void> {
  try {
    useStudio.setState({ caps: await trainerCapabilities() });
  } catch (e) {
    console.error('capabilities() failed', e);
    useStudio.setState({ caps: new Set() });
  }
}

let loading: Promise<void> | undefined;

/** Loads the session's model onto the worker's GPU (once; again after a lost device). */
export function loadModel(force = false): Promise<void> {
  if (loading && !force) return loading;
  loading = (async () => {
    await loadCapabilities();
    if (!useStudio.getState().caps?.has('loadModel')) {
      useStudio.setState({
        model: { phase: 'missing', error: describeError(new TrainerMissingError('loadModel')) },
      });
      return;
    }
    const url = useStudio.getState().session?.modelUrl ?? DEFAULT_MODEL_URL;
    useStudio.setState({ model: { phase: 'loading' } });
    try {
      const info = await trainer().loadModel(url);
      useStudio.setState({ model: { phase: 'ready', info } });
    } catch (e) {
      console.error(e);
      useStudio.setState({ model: { phase: 'error', error: describeError(e, { loading: 'model' }) } });
    }
  })();
  return loading;
}
