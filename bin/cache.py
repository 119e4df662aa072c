#!/usr/bin/env python
"""bin/cache.py: the tfvae-cache tool (see tfvae/cli/cache.py, or run it with --help)."""

from tfvae.cli import cache

if __name__ == '__main__':
  cache.run()
