"""Lists and prunes the prepared datasets of the cache (tfvae/sources/cache.py).

    tfvae-cache list                              each prepared dataset: size, state, spec, ...
    tfvae-cache prune                             removes the stale ones (below)
    tfvae-cache prune --spec=folder:/data/faces   removes every preparation of that spec
    tfvae-cache prune --all                       removes them all
    tfvae-cache prune --dry_run                   says what would go, removes nothing

The cache is --cache_dir, else $TFVAE_CACHE_DIR, else ~/.cache/tfvae. Stale: superseded (a newer
preparation of the same source and image_size/channels exists), old format, source gone (its
folder or file no longer exists), unfinished (a preparation that died, untouched for an hour)
or damaged. A preparation that a running tool reads is kept, and said so. (bin/cache.py is the
same tool.)
"""

import datetime
import sys

from absl import flags

from tfvae import cli
from tfvae.errors import UserError
from tfvae.errors import did_you_mean

FLAGS = flags.FlagValues()
flags.DEFINE_string('cache_dir', None, 'The cache (default $TFVAE_CACHE_DIR or '
                    '~/.cache/tfvae).', flag_values=FLAGS)
flags.DEFINE_boolean('all', False, 'prune: remove every prepared dataset, not only stale ones.',
                     flag_values=FLAGS)
flags.DEFINE_string('spec', None, 'prune: remove the preparations of this dataset spec.',
                    flag_values=FLAGS)
flags.DEFINE_boolean('dry_run', False, 'prune: list what would be removed, remove nothing.',
                     flag_values=FLAGS)

COMMANDS = ('list', 'prune')
_COMMAND = {'name': 'list'}  # the first word on the command line (run() takes it off argv)


def _describe(entry):
  """spec (and its knobs), image shape and split sizes of a cache entry, as text."""
  info = entry.info or {}
  knobs = ', '.join(f'{k}={info[k]}' for k in ('image_size', 'channels') if info.get(k))
  spec = info.get('spec', '?') + (f' ({knobs})' if knobs else '')
  shape = 'x'.join(map(str, info.get('image_shape', []))) or '-'
  sizes = info.get('split_sizes') or {}
  splits = '/'.join(f'{sizes[s]:,}' for s in ('train', 'valid', 'test') if s in sizes) or '-'
  return spec, shape, splits


def _list(cache, root):
  found = cache.entries(root)
  print(f'{root}: {len(found)} prepared dataset{"s" * (len(found) != 1)}, '
        f'{cache.size_text(sum(e.bytes for e in found))}')
  if found:
    print(f'  {"size":>10}  {"state":<11}  {"prepared":<16}  {"shape":<9}  '
          f'{"train/valid/test":<22}  spec')
  for entry in found:
    spec, shape, splits = _describe(entry)
    prepared = (entry.info or {}).get('prepared')
    when = datetime.datetime.fromtimestamp(prepared).strftime('%Y-%m-%d %H:%M') if prepared else '-'
    print(f'  {cache.size_text(entry.bytes):>10}  {entry.state:<11}  {when:<16}  {shape:<9}  '
          f'{splits:<22}  {spec}  [{entry.name}]')


def _prune(cache, specs, root):
  spec = specs.absolute_spec(FLAGS.spec) if FLAGS.spec else None
  results = cache.prune(root, everything=FLAGS.all, spec=spec, dry_run=FLAGS.dry_run)
  freed = 0
  for entry, kept in results:
    verb = 'would remove' if FLAGS.dry_run else ('removed' if kept is None else 'kept')
    reason = f' ({kept})' if kept and not FLAGS.dry_run else ''
    print(f'  {verb:<12}  {cache.size_text(entry.bytes):>10}  {entry.state:<11}  '
          f'{_describe(entry)[0]}  [{entry.name}]{reason}')
    freed += entry.bytes if kept is None or FLAGS.dry_run else 0
  what = 'would free' if FLAGS.dry_run else 'freed'
  print(f'{root}: {what} {cache.size_text(freed)} ({len(results)} folder'
        f'{"s" * (len(results) != 1)} chosen)')


def main():
  from tfvae.sources import cache  # pylint: disable=import-outside-toplevel
  from tfvae.sources import specs  # pylint: disable=import-outside-toplevel

  command = _COMMAND['name']
  if command not in COMMANDS:
    raise UserError(f'unknown command {command!r}{did_you_mean(command, COMMANDS)}; use '
                    f'{" or ".join(COMMANDS)}')
  if command == 'list' and (FLAGS.all or FLAGS.spec or FLAGS.dry_run):
    raise UserError('--all, --spec and --dry_run go with prune, not list')
  if FLAGS.all and FLAGS.spec:
    raise UserError('give --all or --spec, not both')
  root = cache.root(FLAGS.cache_dir)
  if command == 'list':
    _list(cache, root)
  else:
    _prune(cache, specs, root)


def run():
  """The tfvae-cache console script: `tfvae-cache [list|prune] [flags]`."""
  if len(sys.argv) > 1 and not sys.argv[1].startswith('-'):
    _COMMAND['name'] = sys.argv.pop(1)
  cli.run(sys.modules[__name__])


if __name__ == '__main__':
  run()
