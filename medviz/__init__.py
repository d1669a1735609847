"""medviz: look inside text-to-image diffusion models fine-tuned on medical images.

Research use only. Images made or edited here are synthetic and are not for diagnosis.
"""

__version__ = "0.1.0"

RESEARCH_ONLY_NOTICE = "synthetic — research use only, not for diagnosis"
