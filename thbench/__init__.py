"""talking-head-bench: install, run, check and score talking-head video models side by side."""

__version__ = "0.1.0"
