"""Figures drawn with matplotlib: the latent-space scatter plot, the paper's figure 2 (ELBO
against training samples) and tables of images with their title and labels.

Headless and self-contained: every figure is a matplotlib.figure.Figure on its own Agg
canvas (pyplot and the user's chosen backend are never touched), drawn under matplotlib's
default style (so a user's matplotlibrc cannot change the pictures) with the DejaVu fonts
that ship with matplotlib. PNGs are written through tf.io.gfile.
"""

import os

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
import matplotlib.cm
import matplotlib.colors
import matplotlib.figure
import matplotlib.style
import numpy as np
import tensorflow as tf

from tfvae.errors import UserError

DPI = 100

# The keys lower_bound reads from each row (bench/paper_lower_bound.py's CSV columns).
LOWER_BOUND_KEYS = ('z_size', 'examples', 'train_elbo', 'test_elbo')

# image_table's layout, in output pixels: tiles are scaled up by an integer factor until their
# longer side reaches MIN_TILE (as far as MAX_SIDE allows for the whole table), with TILE_GAP
# between tiles, GROUP_GAP more after each group of rows, frames FRAME_WIDTH wide, MARGIN
# around everything; text in points at DPI.
MIN_TILE = 80
MAX_SIDE = 2000
TILE_GAP = 4
GROUP_GAP = 12
FRAME_WIDTH = 3
FRAME_COLOUR = (230, 120, 0)
MARGIN = 8
TITLE_SIZE, TEXT_SIZE = 12, 9

# Decorates every public figure: drawn under matplotlib's default style, so that neither a
# user's matplotlibrc nor their rcParams change the pictures (and theirs are left as they were).
_DEFAULT_STYLE = matplotlib.style.context('default')


def _new_figure(width, height, **kwargs):
  """A Figure of width x height inches on its own Agg canvas (no pyplot, no global backend)."""
  figure = matplotlib.figure.Figure(figsize=(width, height), dpi=DPI, **kwargs)
  FigureCanvasAgg(figure)
  return figure


def _save(figure, path):
  """Writes `figure` (on white) as a PNG at `path`, folders made as needed: RGB, or greyscale
  when every pixel is grey (a picture of greyscale images stays greyscale); returns path."""
  figure.set_facecolor('white')
  figure.canvas.draw()
  pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3]
  if (pixels == pixels[..., :1]).all():
    pixels = pixels[..., :1]
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(tf.io.encode_png(pixels).numpy())
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
    raise UserError(f'scatter wants points [N, 2] with N >= 1, got shape {points.shape}')
  if not np.isfinite(points).all():
    raise UserError(f'scatter got {int((~np.isfinite(points)).any(1).sum())} points with '
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
    raise UserError(f'scatter wants one label per point, shape ({num_points},); got '
                    f'{labels.shape}')
  if not np.issubdtype(labels.dtype, np.integer):
    raise UserError(f'scatter wants integer class labels, got dtype {labels.dtype}')
  return np.unique(labels, return_inverse=True)


def _class_names(classes, class_names):
  """Colour bar tick labels: class_names[c] for each class id c, or the ids themselves."""
  if class_names is None:
    return [str(c) for c in classes]
  if classes.min() < 0 or classes.max() >= len(class_names):
    raise UserError(f'class_names has {len(class_names)} names, but the labels run from '
                    f'{classes.min()} to {classes.max()}')
  return [str(class_names[c]) for c in classes]


def _lower_bound_curves(rows):
  """{z_size: (examples, train ELBO, test ELBO) sorted by examples} from rows of
  LOWER_BOUND_KEYS (numbers, or the strings csv.DictReader gives)."""
  rows = list(rows)
  if not rows:
    raise UserError('lower_bound got no rows; it wants at least one evaluation')
  table = []
  for number, row in enumerate(rows):
    missing = [key for key in LOWER_BOUND_KEYS if key not in row]
    if missing:
      raise UserError(f'lower_bound row {number} lacks {", ".join(missing)}; each row needs '
                      f'{", ".join(LOWER_BOUND_KEYS)}')
    try:
      table.append([float(row[key]) for key in LOWER_BOUND_KEYS])
    except (TypeError, ValueError):
      raise UserError(f'lower_bound row {number} has a non-numeric value among '
                      f'{", ".join(f"{k}={row[k]!r}" for k in LOWER_BOUND_KEYS)}') from None
  table = np.array(table)
  if not np.isfinite(table).all() or table[:, 1].min() <= 0:
    raise UserError('lower_bound wants finite ELBOs and examples > 0 (the x axis is '
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


def tile_scale(tile_shape, num_rows, num_cols):
  """The integer factor image_table scales tiles [H, W] by: the least that makes the longer
  side at least MIN_TILE, but no more than keeps the table within MAX_SIDE (at least 1)."""
  height, width = tile_shape
  wanted = -(-MIN_TILE // max(height, width))
  fits = min((MAX_SIDE - TILE_GAP * num_cols) // max(1, width * num_cols),
             (MAX_SIDE - (TILE_GAP + GROUP_GAP) * num_rows) // max(1, height * num_rows))
  return max(1, min(wanted, fits))


def _offsets(size, gaps):
  """Start of each cell of `size` pixels with gaps[i] pixels after cell i (one per cell)."""
  return np.concatenate([[0], np.cumsum([size + gap for gap in gaps[:-1]])]).astype(int)


def _text_width(figure, text, size):
  """Width in pixels of `text` at font `size` (points), as `figure` renders it."""
  if not text:
    return 0
  artist = figure.text(0, 0, text, fontsize=size)
  width = artist.get_window_extent(figure.canvas.get_renderer()).width
  artist.remove()
  return int(np.ceil(width))


@_DEFAULT_STYLE
def image_table(tiles, path, title=None, caption=None, row_labels=None, column_labels=None,
                framed_columns=(), row_group=None, axis_labels=None, gap=TILE_GAP):
  """Writes a table of images to `path` as a PNG, legible without further explanation; returns
  path.

  tiles [R, C, H, W, ch] (ch 1: greyscale, 3: RGB; float in [0, 1] or uint8): each tile is
  scaled by tile_scale (every pixel a block, no smoothing) and drawn on white, `gap` pixels
  apart, GROUP_GAP more after every `row_group` rows (if given). Optional text: `title` and a
  smaller `caption` above, `row_labels` [R] left of the rows, `column_labels` [C] above the
  columns, `axis_labels` (x, y) below and left of the table; `framed_columns` are drawn in a
  coloured frame (with room for it).
  """
  tiles = np.asarray(tiles)
  if tiles.ndim != 5 or tiles.shape[-1] not in (1, 3) or not tiles.size:
    raise UserError(f'image_table wants tiles [R, C, H, W, ch] with ch 1 or 3, got shape '
                    f'{tiles.shape}')
  if tiles.dtype != np.uint8:
    tiles = np.round(np.clip(tiles.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
  num_rows, num_cols, height, width = tiles.shape[:4]
  scale = tile_scale((height, width), num_rows, num_cols)
  tile_h, tile_w = height * scale, width * scale
  framed = set(c % num_cols for c in framed_columns)
  col_gaps = [gap + 2 * FRAME_WIDTH * ((c in framed) + (c + 1 in framed))
              for c in range(num_cols)]
  row_gaps = [gap + (GROUP_GAP if row_group and (r + 1) % row_group == 0 else 0) +
              2 * FRAME_WIDTH * bool(framed) for r in range(num_rows)]
  lead = FRAME_WIDTH if framed else 0  # room for a frame around the first row or column
  xs = lead + _offsets(tile_w, col_gaps)
  ys = lead + _offsets(tile_h, row_gaps)
  table = np.full((ys[-1] + tile_h + lead, xs[-1] + tile_w + lead, 3), 255, np.uint8)
  for c in framed:
    for y in ys:
      table[y - FRAME_WIDTH:y + tile_h + FRAME_WIDTH,
            xs[c] - FRAME_WIDTH:xs[c] + tile_w + FRAME_WIDTH] = FRAME_COLOUR
  for r, y in enumerate(ys):
    for c, x in enumerate(xs):
      block = np.repeat(np.repeat(tiles[r, c], scale, axis=0), scale, axis=1)
      table[y:y + tile_h, x:x + tile_w] = block  # greyscale broadcasts to RGB

  figure = _new_figure(1.0, 1.0)
  line = int(TEXT_SIZE * DPI / 72 * 1.6)        # pixels per line of small text
  title_h = int(TITLE_SIZE * DPI / 72 * 2) if title else 0
  x_label, y_label = axis_labels or (None, None)
  left = max([_text_width(figure, label, TEXT_SIZE) for label in row_labels or []] + [0])
  left += (MARGIN if row_labels else 0) + (line if y_label else 0)
  top = title_h + (line if caption else 0) + (line if column_labels else 0)
  bottom = line if x_label else 0
  fig_w = 2 * MARGIN + left + max(table.shape[1], _text_width(figure, title, TITLE_SIZE) - left,
                                  _text_width(figure, caption, TEXT_SIZE) - left)
  fig_h = 2 * MARGIN + top + table.shape[0] + bottom
  figure.set_size_inches(fig_w / DPI, fig_h / DPI)
  # The table's lower-left corner, in pixels: centred when the title is wider.
  x0 = MARGIN + left + (fig_w - 2 * MARGIN - left - table.shape[1]) // 2
  y0 = MARGIN + bottom
  table_top = y0 + table.shape[0]

  def text(x, y, words, size=TEXT_SIZE, **kwargs):
    figure.text(x / fig_w, y / fig_h, words, fontsize=size, ha='center', va='center', **kwargs)

  figure.figimage(table, xo=x0, yo=y0, origin='upper')
  if title:
    text(fig_w / 2, fig_h - MARGIN - title_h / 2, title, size=TITLE_SIZE)
  if caption:
    text(fig_w / 2, fig_h - MARGIN - title_h - line / 2, caption)
  for c, label in enumerate(column_labels or []):
    text(x0 + xs[c] + tile_w / 2, table_top + line / 2, label)
  for r, label in enumerate(row_labels or []):
    figure.text((x0 - MARGIN) / fig_w, (table_top - ys[r] - tile_h / 2) / fig_h, label,
                fontsize=TEXT_SIZE, ha='right', va='center')
  if x_label:
    text(x0 + table.shape[1] / 2, MARGIN + line / 2, x_label)
  if y_label:
    text(MARGIN + line / 2, y0 + table.shape[0] / 2, y_label, rotation=90)
  return _save(figure, path)
