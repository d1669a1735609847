"""Training the bundled models: ``python -m medviz.train {vae,text2image,oracle,recipe} ...``.

Built on accelerate: ``accelerate launch --multi_gpu --num_processes N -m medviz.train ...`` runs the same code
on N GPUs or CPU processes, each drawing its own rows (``common.RowSampler``).
One file per job; every checkpoint folder carries the JSON config that made it.
"""
