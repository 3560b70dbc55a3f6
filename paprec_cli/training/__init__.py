"""Multitask training of paprec's P5-style RLM (DESIGN.md's train.py, split into small modules).

- `words`: auxiliary families that tie attribute words to items ("words that steer");
- `mixture`: each epoch's multitask, multi-template pairs (held-out templates never used);
- `batches`: encoding and length-bucketed batches; `loop`: AdamW, schedule, clipping, autocast;
- `evaluation`, `sensitivity`: validation/test metrics and the prompt-sensitivity report;
- `recipe`: per-size defaults; `setup`: dataset/tasks/options; `state`: resume; `run`: the whole run.
"""
