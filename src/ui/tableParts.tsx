// Pieces the Sessions tab's tables share: a header row, and a Delete button that asks once more (for 4 s).
import { useEffect, useState } from 'react';

export function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c, i) => (
          <th key={i}>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

/** "Delete", then "Delete for good" until clicked or 4 s pass. */
export function ConfirmDelete({ onDelete, testId }: { onDelete: () => void; testId: string }) {
  const [confirming, setConfirming] = useState(false);
  useEffect(() => {
    if (!confirming) return;
    const t = setTimeout(() => setConfirming(false), 4000);
    return () => clearTimeout(t);
  }, [confirming]);
  return confirming ? (
    <button className="danger small" data-testid="confirm-delete" onClick={onDelete}>
      Delete for good
    </button>
  ) : (
    <button className="ghost small" data-testid={testId} onClick={() => setConfirming(true)}>
      Delete
    </button>
  );
}
