"""
Benchmarks of p2poverlay, each figure beside a baseline measured in the
same run.  Run them with ``python -m benchmarks`` (``--help`` lists the
options); see ``docs/performance.rst`` for the results.
"""
