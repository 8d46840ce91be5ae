"""Helpers shared by scripts/make_int8.py and scripts/make_eval_sets.py (the INT8 pipeline).

`common` uses the standard library only, so the scripts can decide that they are up to date
before importing Pillow, numpy or ONNX Runtime; `imaging` and `quantise` hold the heavy work.
"""
