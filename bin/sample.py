#!/usr/bin/env python
"""bin/sample.py: the tfvae-sample tool (see tfvae/cli/sample.py, or run it with --help)."""

from tfvae.cli import sample

if __name__ == '__main__':
  sample.run()
