"""The map between an annotation file's category ids and the model's labels.

`contiguous` (default): labels 0..K-1 in sorted category-id order, K = number of categories.
`category_id`: label = category id, K = max id + 1, the official DETR convention (91 for COCO), so
the official checkpoints' class heads are used unchanged on COCO categories.
"""

from dataclasses import dataclass

LABEL_MODES = ("contiguous", "category_id")


@dataclass(frozen=True)
class CategoryMap:
    category_ids: list[int]  # category_ids[label] = the file's id (contiguous); the ids present (category_id)
    id_names: dict[int, str]
    label_mode: str = "contiguous"

    def __post_init__(self):
        if self.label_mode not in LABEL_MODES:
            raise ValueError(f"data.label_mode must be one of {LABEL_MODES}, got {self.label_mode!r}")

    @classmethod
    def from_coco_categories(cls, categories: list[dict], label_mode: str = "contiguous") -> "CategoryMap":
        ids = sorted(int(c["id"]) for c in categories)
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate category ids in the annotation file: {ids}")
        return cls(ids, {int(c["id"]): str(c["name"]) for c in categories}, label_mode)

    @property
    def num_classes(self) -> int:
        if self.label_mode == "category_id":
            return max(self.category_ids) + 1
        return len(self.category_ids)

    @property
    def names(self) -> list[str]:
        """Class name of each label (unused ids in category_id mode get a placeholder)."""
        if self.label_mode == "category_id":
            return [self.id_names.get(i, f"unused_{i}") for i in range(self.num_classes)]
        return [self.id_names[i] for i in self.category_ids]

    def label_of(self, category_id: int) -> int:
        if category_id not in self.id_names:
            raise KeyError(f"category id {category_id} is not in the annotation file's categories {self.category_ids}")
        return category_id if self.label_mode == "category_id" else self.category_ids.index(category_id)

    def category_id_of(self, label: int) -> int:
        return int(label) if self.label_mode == "category_id" else self.category_ids[int(label)]

    def to_dict(self) -> dict:
        """Plain JSON-able form, stored inside checkpoints."""
        return {
            "category_ids": list(self.category_ids),
            "names": [self.id_names[i] for i in self.category_ids],
            "label_mode": self.label_mode,
        }

    @classmethod
    def from_dict(cls, saved: dict) -> "CategoryMap":
        return cls(
            list(saved["category_ids"]),
            dict(zip(saved["category_ids"], saved["names"], strict=True)),
            saved.get("label_mode", "contiguous"),
        )
