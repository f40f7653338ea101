"""Allow `python -m target_pinterest_audiences.report`."""

from target_pinterest_audiences.report.cli import main

main()
