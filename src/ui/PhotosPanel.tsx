// Subject photos: drop zone and file picker, per-file messages, thumbnails with remove, the count advice,
// and a crop preview of the selected photo at the model's training resolution, with its caption.
import { useEffect, useRef, useState, type DragEvent } from 'react';
import {
  ACCEPTED_TYPES,
  centerSquareCrop,
  photoCountAdvice,
  PHOTO_LIMITS,
  toTrainingImage,
} from '../train/photos';
import { formatBytes } from '../train/sessionStore';
import { folderEntries } from './droppedFiles';
import {
  addDroppedFolder,
  addPhotoFiles,
  dismissPhotoNote,
  modelResolution,
  removePhoto,
  selectPhoto,
  setPhotoCaption,
} from './actions/photos';
import { captionProblem } from '../train/captions';
import { isTraining, useStudio, type PhotoItem } from './studioStore';

export function PhotosPanel() {
  const photos = useStudio((s) => s.photos);
  const notes = useStudio((s) => s.photoNotes);
  const busy = useStudio((s) => s.photosBusy);
  const selected = useStudio((s) => s.selectedPhoto);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const advice = photoCountAdvice(photos.length);
  const full = photos.length >= PHOTO_LIMITS.maxCount;

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    // A folder (a kohya dataset) is walked for its photos and captions; plain files go in as they are.
    const folder = folderEntries(e.dataTransfer);
    if (folder) void addDroppedFolder(folder);
    else void addPhotoFiles([...e.dataTransfer.files]);
  };

  return (
    <section className="panel photos" data-testid="photos-panel">
      <h2>
        Photos <span className="count">{photos.length}</span>
      </h2>
      <div
        className={`dropzone${over ? ' over' : ''}${full ? ' disabled' : ''}`}
        data-testid="dropzone"
        role="button"
        tabIndex={0}
        onClick={() => input.current?.click()}
        onKeyDown={(e) => (e.key === 'Enter' || e.key === ' ') && input.current?.click()}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        <strong>{busy ? `Reading ${busy} photo${busy > 1 ? 's' : ''}…` : 'Drop photos here'}</strong>
        <span>
          or click to choose · JPEG, PNG, WebP · up to {formatBytes(PHOTO_LIMITS.maxBytes)} each · captions as
          name.txt
        </span>
        <input
          ref={input}
          type="file"
          multiple
          accept={ACCEPTED_TYPES}
          hidden
          data-testid="photo-input"
          onChange={(e) => {
            void addPhotoFiles([...(e.target.files ?? [])]);
            e.target.value = '';
          }}
        />
      </div>
      <p className={`hint ${advice.level}`} data-testid="photo-count">
        {advice.message}
      </p>
      {notes.length > 0 ? (
        <ul className="notes" data-testid="photo-notes">
          {notes.map((n) => (
            <li key={n.id} className={n.level} data-testid="photo-note">
              <span>{n.message}</span>
              <button className="icon" aria-label="Dismiss" onClick={() => dismissPhotoNote(n.id)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      <div className="thumbs">
        {photos.map((p) => (
          <figure
            key={p.n}
            className={p.n === selected ? 'selected' : ''}
            data-testid="photo-thumb"
            title={`${p.name} · ${p.width}×${p.height} · ${formatBytes(p.bytes)}`}
          >
            <button
              className="pick"
              aria-label={`Select ${p.name}`}
              aria-pressed={p.n === selected}
              onClick={() => selectPhoto(p.n)}
            >
              <img src={p.thumbUrl} alt={p.name} />
            </button>
            {p.caption ? (
              <span className="captioned" data-testid="photo-captioned" title={p.caption}>
                T
              </span>
            ) : null}
            <button className="remove" aria-label={`Remove ${p.name}`} onClick={() => void removePhoto(p.n)}>
              ×
            </button>
          </figure>
        ))}
      </div>
      {photos.find((p) => p.n === selected) ? (
        <>
          <CropPreview photo={photos.find((p) => p.n === selected)!} />
          <CaptionField photo={photos.find((p) => p.n === selected)!} />
        </>
      ) : null}
    </section>
  );
}

/**
 * The selected photo's own training prompt. Empty: it trains with the session's prompt; a caption needs an
 * identifier as the prompt does (the model learns the subject under it).
 */
function CaptionField({ photo }: { photo: PhotoItem }) {
  const prompt = useStudio((s) => s.settings.prompt);
  const reserved = useStudio((s) => s.model.info?.identifierTokens);
  const problem = photo.caption ? captionProblem(photo.caption, reserved) : undefined;
  const saved = useStudio((s) => s.captionsSaved);
  // As the settings: a run in progress took the captions it started with.
  const locked = useStudio((s) => isTraining(s.train.phase));
  return (
    <label className="field caption-field">
      <span className="label">Caption of {photo.name}</span>
      <input
        data-testid="photo-caption"
        data-saved={String(saved)}
        disabled={locked}
        value={photo.caption ?? ''}
        placeholder={`${prompt} (the session's prompt)`}
        onChange={(e) => void setPhotoCaption(photo.n, e.target.value)}
        onBlur={(e) => void setPhotoCaption(photo.n, e.target.value, { now: true })}
      />
      <span className={`default${problem ? ' bad' : ''}`} data-testid="photo-caption-hint">
        {problem ??
          (photo.caption
            ? 'This photo trains with its own caption.'
            : 'Empty: trains with the session\'s prompt. A caption ("<v1> dog face, on grass") says what else is in the photo; dog.txt dropped beside dog.png fills it.')}
      </span>
    </label>
  );
}

const CROP_SOURCE_HEIGHT = 170;

/** The photo with its center square marked, and the square as the model will see it. */
function CropPreview({ photo }: { photo: PhotoItem }) {
  const resolution = useStudio((s) => s.model.info?.resolution) ?? modelResolution();
  const canvas = useRef<HTMLCanvasElement>(null);
  const source = useRef<HTMLImageElement>(null);
  useEffect(() => {
    const u = URL.createObjectURL(photo.blob);
    source.current!.src = u;
    return () => URL.revokeObjectURL(u);
  }, [photo.blob]);
  useEffect(() => {
    let live = true;
    void toTrainingImage(photo.blob, photo.name, resolution).then((img) => {
      const c = canvas.current;
      if (!live || !c) return;
      c.width = img.width;
      c.height = img.height;
      c.getContext('2d')!.putImageData(
        new ImageData(new Uint8ClampedArray(img.rgba), img.width, img.height),
        0,
        0,
      );
    });
    return () => {
      live = false;
    };
  }, [photo.blob, photo.name, resolution]);
  const { sx, sy, size } = centerSquareCrop(photo.width, photo.height);
  const box = {
    left: `${(100 * sx) / photo.width}%`,
    top: `${(100 * sy) / photo.height}%`,
    width: `${(100 * size) / photo.width}%`,
    height: `${(100 * size) / photo.height}%`,
  };
  return (
    <div className="crop" data-testid="crop-preview" data-resolution={resolution}>
      <div
        className="crop-source"
        // Sized to the photo's shape (at most CROP_SOURCE_HEIGHT tall) so the box's percentages land on it.
        style={{
          aspectRatio: `${photo.width} / ${photo.height}`,
          width: `min(100%, ${(CROP_SOURCE_HEIGHT * photo.width) / photo.height}px)`,
        }}
      >
        <img ref={source} alt="" />
        <div className="crop-box" style={box} />
      </div>
      <div className="crop-result">
        <canvas ref={canvas} aria-label={`${photo.name} cropped to ${resolution}×${resolution}`} />
        <span data-testid="crop-caption">
          {photo.width}×{photo.height} → {resolution}×{resolution}
        </span>
      </div>
    </div>
  );
}
