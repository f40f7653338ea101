"""Allow `python -m target_pinterest_audiences`."""

from target_pinterest_audiences.target import TargetPinterestAudiences

TargetPinterestAudiences.cli()
