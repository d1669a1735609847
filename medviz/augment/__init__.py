"""Counterfactual augmentation of whole datasets: a plan of edits (``plan``) run in shards over the processes of
``accelerate launch`` (``run``). ``python -m medviz.augment --help``."""
