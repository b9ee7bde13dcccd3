// The studio's long-lived objects outside React: the IndexedDB session store and the metrics history.
import { idbKeyValueStore, SessionStore } from '../train/sessionStore';
import { MetricsHistory } from './metrics';

export const sessionStore = new SessionStore(idbKeyValueStore(), {
  estimate: () => navigator.storage.estimate(),
});

export const metrics = new MetricsHistory();
