"""Code the tests share that is not part of fitbench: synthetic MNIST-like digits and the bitstream fuzzer.

Imported as `support` (tests/conftest.py puts tests/ on sys.path).
"""
