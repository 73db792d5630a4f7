"""IntegraBNER from Python: entities (anatomy, disease, finding, device) with
their assertion, and coded findings with qualifiers, confidence and source,
for chest radiology reports and images.

The engine is the one of the ``integrabner`` command line and of the page
(Rust, loaded from a verified model bundle); a prediction is exactly the JSON
object ``integrabner predict`` writes for the same case.

    >>> from integrabner import Labeler
    >>> labeler = Labeler()                       # the installed bundle
    >>> labeler.predict("Small left pleural effusion.", id="r1")["findings"][0]["concept"]
    'Pleural Effusion'

For corpus scale see examples/ray_batch.py in the repository.
"""

from ._native import Labeler

__all__ = ["Labeler"]
