"""The input side: Singer messages in, one checked `StreamPlan` per stream out (no sending)."""
