"""Figures drawn with matplotlib: the latent-space scatter plot, the paper's figure 2 (ELBO
against training samples) and image grids with a title.

Headless and self-contained: every figure is a matplotlib.figure.Figure on its own Agg
canvas (pyplot and the user's chosen backend are never touched), drawn under matplotlib's
default style (so a user's matplotlibrc cannot change the pictures) with the DejaVu fonts
that ship with matplotlib. PNGs are written through tf.io.gfile, like tfvae.images' grids.
Plain pixel grids without a title are tfvae.images' business (write_png), not this module's.
"""

import io
import os

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
import matplotlib.cm
import matplotlib.colors
import matplotlib.figure
import matplotlib.style
import numpy as np
import tensorflow as tf

DPI = 100

# The keys lower_bound reads from each row (bench/paper_lower_bound.py's CSV columns).
LOWER_BOUND_KEYS = ('z_size', 'examples', 'train_elbo', 'test_elbo')

# titled_image's layout, in output pixels: room for the title above the image, the margin
# around both, and the longer side an image is scaled up to (by an integer factor).
TITLE_HEIGHT = 36
IMAGE_MARGIN = 8
TITLED_IMAGE_SIZE = 512

# Decorates every public figure: drawn under matplotlib's default style, so that neither a
# user's matplotlibrc nor their rcParams change the pictures (and theirs are left as they were).
_DEFAULT_STYLE = matplotlib.style.context('default')


def _new_figure(width, height, **kwargs):
  """A Figure of width x height inches on its own Agg canvas (no pyplot, no global backend)."""
  figure = matplotlib.figure.Figure(figsize=(width, height), dpi=DPI, **kwargs)
  FigureCanvasAgg(figure)
  return figure


def _save(figure, path):
  """Writes `figure` as a PNG at `path` (folders made as needed); returns path."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=DPI, facecolor='white')
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(buffer.getvalue())
  return path


def class_colours(num_classes):
  """RGB [num_classes, 3] in [0, 1]: tab10 up to 10 classes, tab20 up to 20, else turbo
  sampled evenly."""
  if num_classes <= 10:
    return np.array(matplotlib.colormaps['tab10'].colors[:num_classes])
  if num_classes <= 20:
    return np.array(matplotlib.colormaps['tab20'].colors[:num_classes])
  return matplotlib.colormaps['turbo'](np.linspace(0.05, 0.95, num_classes))[:, :3]


@_DEFAULT_STYLE
def scatter(points, labels, path, title=None, class_names=None,
            axis_labels=('$z_1$', '$z_2$')):
  """Writes a scatter plot of points [N, 2] (e.g. 2-D posterior means: the paper's
  latent-space picture) to `path` as a PNG; returns path.

  labels [N] (integers) colour the points, one colour per class, with a discrete colour bar
  whose ticks are the class ids (or class_names[id]); None draws every point in one colour
  without a colour bar. Equal aspect, small translucent markers drawn in a seeded random
  order so that no class hides the others.
  """
  points = np.asarray(points, np.float64)
  if points.ndim != 2 or points.shape[1] != 2 or not len(points):
    raise ValueError(f'scatter wants points [N, 2] with N >= 1, got shape {points.shape}')
  if not np.isfinite(points).all():
    raise ValueError(f'scatter got {int((~np.isfinite(points)).any(1).sum())} points with '
                     'NaN or infinite coordinates; all must be finite')
  order = np.random.RandomState(0).permutation(len(points))
  marker_area = float(np.clip(2e4 / len(points), 2.0, 20.0))  # points^2: smaller when dense
  figure = _new_figure(6.4 if labels is not None else 5.4, 5.4, layout='constrained')
  axes = figure.add_subplot()
  if labels is None:
    axes.scatter(points[order, 0], points[order, 1], s=marker_area, color='tab:blue',
                 alpha=0.6, linewidths=0)
  else:
    classes, class_index = _class_index(labels, len(points))
    names = _class_names(classes, class_names)
    colours = class_colours(len(classes))
    axes.scatter(points[order, 0], points[order, 1], s=marker_area,
                 color=colours[class_index[order]], alpha=0.6, linewidths=0)
    # The colour bar gets its own opaque mappable: one band per class, ticks at band centres.
    bands = matplotlib.cm.ScalarMappable(
        norm=matplotlib.colors.BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes)),
        cmap=matplotlib.colors.ListedColormap(colours))
    bar = figure.colorbar(bands, ax=axes, ticks=np.arange(len(classes)), aspect=30)
    bar.ax.set_yticklabels(names)
    bar.ax.tick_params(length=0)
    bar.set_label('label')
  axes.set_aspect('equal', adjustable='datalim')
  axes.set_xlabel(axis_labels[0])
  axes.set_ylabel(axis_labels[1])
  axes.grid(alpha=0.3, linewidth=0.5)
  axes.set_axisbelow(True)
  if title:
    axes.set_title(title)
  return _save(figure, path)


def _class_index(labels, num_points):
  """(the distinct integer labels, sorted; each point's index into them [N]), checked."""
  labels = np.asarray(labels)
  if labels.shape != (num_points,):
    raise ValueError(f'scatter wants one label per point, shape ({num_points},); got '
                     f'{labels.shape}')
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f'scatter wants integer class labels, got dtype {labels.dtype}')
  return np.unique(labels, return_inverse=True)


def _class_names(classes, class_names):
  """Colour bar tick labels: class_names[c] for each class id c, or the ids themselves."""
  if class_names is None:
    return [str(c) for c in classes]
  if classes.min() < 0 or classes.max() >= len(class_names):
    raise ValueError(f'class_names has {len(class_names)} names, but the labels run from '
                     f'{classes.min()} to {classes.max()}')
  return [str(class_names[c]) for c in classes]


def _lower_bound_curves(rows):
  """{z_size: (examples, train ELBO, test ELBO) sorted by examples} from rows of
  LOWER_BOUND_KEYS (numbers, or the strings csv.DictReader gives)."""
  rows = list(rows)
  if not rows:
    raise ValueError('lower_bound got no rows; it wants at least one evaluation')
  table = []
  for number, row in enumerate(rows):
    missing = [key for key in LOWER_BOUND_KEYS if key not in row]
    if missing:
      raise ValueError(f'lower_bound row {number} lacks {", ".join(missing)}; each row needs '
                       f'{", ".join(LOWER_BOUND_KEYS)}')
    try:
      table.append([float(row[key]) for key in LOWER_BOUND_KEYS])
    except (TypeError, ValueError):
      raise ValueError(f'lower_bound row {number} has a non-numeric value among '
                       f'{", ".join(f"{k}={row[k]!r}" for k in LOWER_BOUND_KEYS)}') from None
  table = np.array(table)
  if not np.isfinite(table).all() or table[:, 1].min() <= 0:
    raise ValueError('lower_bound wants finite ELBOs and examples > 0 (the x axis is '
                     'logarithmic)')
  curves = {}
  for z_size in np.unique(table[:, 0]):
    mine = table[table[:, 0] == z_size]
    mine = mine[np.argsort(mine[:, 1], kind='stable')]
    curves[int(z_size)] = (mine[:, 1], mine[:, 2], mine[:, 3])
  return curves


@_DEFAULT_STYLE
def lower_bound(rows, path, title=None):
  """Writes the paper's figure 2 to `path` as a PNG; returns path.

  rows: one mapping per evaluation with LOWER_BOUND_KEYS (z_size, examples = training
  samples seen, train_elbo, test_elbo in nats), e.g. bench/paper_lower_bound.py's rows or
  csv.DictReader over its lower_bound.csv. One panel per latent size, "N_z = z", train
  (solid) and test (dashed) ELBO against log10(examples); the panels share a y range chosen
  from the last three quarters (on the log scale) of the evaluations, as in the paper, so
  that the converged part is readable.
  """
  curves = _lower_bound_curves(rows)
  examples = np.concatenate([c[0] for c in curves.values()])
  values = np.concatenate([np.concatenate([c[1], c[2]]) for c in curves.values()])
  log_examples = np.log10(np.concatenate([examples, examples]))
  late = log_examples >= log_examples.min() + 0.25 * np.ptp(log_examples)
  low, high = values[late].min(), values.max()
  pad = 0.05 * (high - low) or 1.0

  figure = _new_figure(0.6 + 3.2 * len(curves), 3.6, layout='constrained')
  panels = figure.subplots(1, len(curves), sharey=True, squeeze=False)[0]
  for axes, (z_size, (seen, train, test)) in zip(panels, curves.items()):
    # Train wide beneath, test narrow and dashed on top: both show where they coincide.
    axes.plot(seen, train, color='tab:blue', linewidth=2.5, marker='o', markersize=4,
              label='train')
    axes.plot(seen, test, color='tab:red', linewidth=1.25, marker='o', markersize=2.5,
              linestyle='--', label='test')
    axes.set_xscale('log')
    axes.set_ylim(low - pad, high + pad)
    axes.set_title(f'$N_z = {z_size}$')
    axes.grid(alpha=0.3, linewidth=0.5, which='both')
  panels[0].set_ylabel('ELBO (nats)')
  panels[-1].legend(loc='lower right')
  figure.supxlabel('# training samples evaluated')
  if title:
    figure.suptitle(title)
  return _save(figure, path)


@_DEFAULT_STYLE
def titled_image(image, path, title, scale=None):
  """Writes image [H, W, C] (C 1: greyscale, C 3: RGB; float in [0, 1] or uint8, e.g. a
  tfvae.images.image_grid) with `title` above it to `path` as a PNG; returns path.

  Each image pixel becomes a scale x scale block of output pixels, copied without smoothing
  (figimage, no resampling); scale None: the largest integer factor that keeps the longer
  side within TITLED_IMAGE_SIZE (at least 1). The figure widens to fit a long title.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] not in (1, 3) or not image.size:
    raise ValueError(f'titled_image wants an image [H, W, C] with C 1 or 3, got shape '
                     f'{image.shape}')
  if image.dtype != np.uint8:
    image = np.round(np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
  height, width = image.shape[:2]
  scale = scale or max(1, TITLED_IMAGE_SIZE // max(height, width))
  pixels = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
  figure = _new_figure(1.0, 1.0)
  text = figure.text(0.5, 1.0, title, ha='center', va='center', fontsize=12)
  title_width = text.get_window_extent(figure.canvas.get_renderer()).width
  fig_width = int(max(pixels.shape[1], np.ceil(title_width) + 2 * IMAGE_MARGIN) +
                  2 * IMAGE_MARGIN)
  fig_height = pixels.shape[0] + TITLE_HEIGHT + IMAGE_MARGIN
  figure.set_size_inches(fig_width / DPI, fig_height / DPI)
  text.set_position((0.5, 1.0 - TITLE_HEIGHT / 2 / fig_height))
  left = (fig_width - pixels.shape[1]) // 2
  if image.shape[-1] == 1:
    figure.figimage(pixels[..., 0], xo=left, yo=IMAGE_MARGIN, cmap='gray', vmin=0, vmax=255,
                    origin='upper')
  else:
    figure.figimage(pixels, xo=left, yo=IMAGE_MARGIN, origin='upper')
  return _save(figure, path)
