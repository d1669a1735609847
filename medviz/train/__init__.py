"""Training the bundled models: ``python -m medviz.train {vae,text2image,oracle,recipe} ...``.

Built on accelerate, so ``accelerate launch -m medviz.train ...`` scales the same code to several GPUs.
One file per job; every checkpoint folder carries the JSON config that made it.
"""
