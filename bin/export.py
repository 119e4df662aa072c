#!/usr/bin/env python
"""bin/export.py: the tfvae-export tool (see tfvae/cli/export.py, or run it with --help)."""

from tfvae.cli import export

if __name__ == '__main__':
  export.run()
