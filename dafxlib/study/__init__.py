"""The study's own published results, shipped with the package: loaders, re-analysis, MUSHRA.

``dafxlib.study.load`` reads the checksum-verified compact copy in ``data/`` (made from the study's
``src/evaluation/data`` by ``scripts/build_study_data.py``; MIT licence, see ``data/LICENSE``),
``dafxlib.study.analysis`` re-analyses it and ``dafxlib.study.mushra`` analyses webMUSHRA results
files (the study's and new ones alike).
"""

from .load import StudyDataError

__all__ = ["StudyDataError"]
