"""Benchmarks of one gateway process on this machine: `python -m bench` (or `make bench`).

Each benchmark starts what it measures for real (a Tansu broker, a gateway process, PostgreSQL when
it answers) on loopback, drives it with a bounded load, prints its figures and stops everything.
Not part of the test suite: run it on a quiet machine.
"""
