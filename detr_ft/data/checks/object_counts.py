"""Objects per image against the model's query count. DETR predicts at most `num_queries` objects per image, so
an image holding more can never be fully recalled, however long it trains; the data check and the training
start-up say so, with the value to set."""

import math
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectCounts:
    per_image: tuple[int, ...]  # objects (non-crowd annotations) of each image, 0 for images without any

    @classmethod
    def from_coco(cls, data: dict) -> "ObjectCounts":
        """From a COCO annotation dict; crowd regions are left out, as the dataset leaves them out of targets."""
        annotations = [a for a in data.get("annotations", []) if isinstance(a, dict) and a.get("iscrowd", 0) != 1]
        counts = Counter(a.get("image_id") for a in annotations if isinstance(a.get("image_id"), int))
        images = [image.get("id") for image in data.get("images", []) if isinstance(image, dict)]
        return cls(tuple(counts.get(image_id, 0) if isinstance(image_id, int) else 0 for image_id in images))

    @property
    def largest(self) -> int:
        return max(self.per_image, default=0)

    @property
    def percentile_99(self) -> int:
        """Nearest-rank 99th percentile: 99% of the images hold at most this many objects."""
        if not self.per_image:
            return 0
        ordered = sorted(self.per_image)
        return ordered[math.ceil(0.99 * len(ordered)) - 1]

    def images_above(self, num_queries: int) -> int:
        return sum(count > num_queries for count in self.per_image)

    def describe(self, num_queries: int) -> str:
        return (
            f"objects per image: largest {self.largest}, 99th percentile {self.percentile_99} "
            f"(model.num_queries={num_queries})"
        )

    def warning(self, num_queries: int) -> str | None:
        """What to do when some image holds more objects than the model has queries; None when none does."""
        above = self.images_above(num_queries)
        if not above:
            return None
        return (
            f"{above} of {len(self.per_image)} images hold more objects than model.num_queries={num_queries} "
            f"(largest {self.largest}, 99th percentile {self.percentile_99}): DETR predicts at most {num_queries} "
            f"objects per image, so recall on them is capped. Set model.num_queries={suggested_queries(self.largest)} "
            "(about 1.5x the largest count, as DETR's 100 queries for COCO's ~60; fine-tuning keeps the "
            "checkpoint's query embeddings and initialises the added ones)"
        )


def suggested_queries(largest: int) -> int:
    """Headroom above the largest count (the matcher needs spare queries to say 'no object'), rounded up to 10."""
    return max(10, math.ceil(1.5 * largest / 10) * 10)
