import os
from typing import Any, Iterable, Literal, Optional, Sequence, Union

ImageInput = Union[str, "os.PathLike[str]", bytes]

class Labeler:
    """A labeler over one model bundle, every file checked against the
    bundle's manifest.json before use.

    models: the bundle directory; when None, $INTEGRABNER_MODELS, then the
    bundle installed with the package, then ./models.
    Raises ValueError when the bundle is missing, damaged or inconsistent.
    """

    def __init__(self, models: Optional[Union[str, "os.PathLike[str]"]] = None) -> None: ...
    @property
    def models(self) -> str:
        """The bundle directory this labeler was loaded from."""
    @property
    def bundle_version(self) -> str:
        """The bundle's version, from its manifest.json."""
    @property
    def model_kinds(self) -> list[str]:
        """Which models the bundle has: a subset of "report", "image", "fusion"."""
    def predict(
        self,
        text: Optional[str] = None,
        image: Union[None, ImageInput, Sequence[ImageInput]] = None,
        id: Optional[str] = None,
        scores: bool = False,
    ) -> dict[str, Any]:
        """One case (a report, images, or both) as `integrabner predict`
        writes it; id None names it "unnamed". Raises ValueError when it
        cannot be analysed."""
    def predict_batch(
        self,
        cases: Iterable[dict[str, Any]],
        scores: bool = False,
        errors: Literal["raise", "report"] = "raise",
    ) -> list[dict[str, Any]]:
        """Many cases, each shaped like a line of predict's JSONL input
        ({"id", "text"?, "image"?, "images"?}), in order. errors="report"
        puts {"id", "error"} in place of a case that cannot be analysed."""

__all__ = ["Labeler"]
