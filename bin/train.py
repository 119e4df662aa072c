#!/usr/bin/env python
"""bin/train.py: the tfvae-train tool (see tfvae/cli/train.py, or run it with --help)."""

from tfvae.cli import train

if __name__ == '__main__':
  train.run()
