import re

# Shared definitions for every stage. Each stage's .smk file adds its final outputs to
# TARGETS, which `rule all` requests.

TARGETS = []

LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"


wildcard_constraints:
    name=r"[A-Za-z0-9_.\-]+",
