"""Bootstrap: install what talking-head-bench needs on a fresh Debian/Ubuntu machine."""
