"""Progress of long work other than training (preparing a large dataset, ...) in the log:

    Preparing folder:/data/faces: 12,000/50,000 images (24%), 1,850 images/sec, 0:00:21 left

A line at most every `every_secs` (none for work shorter than that), the rate and the time left
from the work done so far: time left = (total - done) / (done / elapsed).
"""

import time

from absl import logging


def duration(seconds):
  """Seconds as H:MM:SS."""
  seconds = int(round(max(seconds, 0)))
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


class Progress:
  """Counts `total` units of work named `what` and logs how far it is (module docstring)."""

  def __init__(self, what, total, unit='images', every_secs=10.0, log=logging.info,
               clock=time.monotonic):
    self.what, self.total, self.unit, self.every_secs = what, total, unit, every_secs
    self._log, self._clock = log, clock
    self.start = self._last = clock()
    self.done = 0

  def add(self, count):
    """Counts `count` more units done; logs a line when every_secs have passed since the last."""
    self.done += count
    now = self._clock()
    if now - self._last < self.every_secs or not self.done:
      return
    self._last = now
    rate = self.done / max(now - self.start, 1e-9)
    self._log('%s: %s/%s %s (%d%%), %s %s/sec, %s left', self.what, f'{self.done:,}',
              f'{self.total:,}', self.unit, 100 * self.done // max(self.total, 1),
              f'{rate:,.0f}', self.unit, duration((self.total - self.done) / rate))

  @property
  def seconds(self):
    """Seconds since the work started."""
    return self._clock() - self.start
