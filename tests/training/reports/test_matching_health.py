"""Matching health: instability follows each object (image id, annotation index) across epochs, unmatched queries
count the epoch's never-used ones, and the no-object probability is read on the matched queries only."""

import numpy as np
import pytest
import torch

from detr_ft.training.reports.matching_health import MatchTracker, no_object_probability_sum


def pairs(queries, targets):
    return np.array(queries, dtype=np.int64), np.array(targets, dtype=np.int64)


def test_instability_is_the_share_of_objects_whose_query_changed():
    tracker = MatchTracker(num_queries=10)
    tracker.add([7, 8], [pairs([0, 1], [0, 1]), pairs([2], [0])])
    first = tracker.end_epoch()
    assert "instability" not in first  # nothing to compare with yet
    tracker.add([7, 8], [pairs([0, 5], [0, 1]), pairs([2], [0])])  # image 7's object 1 moved from query 1 to 5
    assert tracker.end_epoch()["instability"] == pytest.approx(1 / 3)


def test_the_same_query_on_another_image_is_not_a_change():
    tracker = MatchTracker(num_queries=4)
    tracker.add([1], [pairs([3], [0])])
    tracker.end_epoch()
    tracker.add([2], [pairs([3], [0])])  # another image: no object in common
    assert "instability" not in tracker.end_epoch()


def test_unmatched_queries_are_those_no_object_used_in_the_epoch():
    tracker = MatchTracker(num_queries=10)
    tracker.add([1, 2], [pairs([0, 1], [0, 1]), pairs([1, 4], [1, 0])])
    assert tracker.end_epoch()["unmatched_queries"] == pytest.approx(0.7)  # queries 0, 1, 4 used
    tracker.add([1], [pairs([9], [0])])
    assert tracker.end_epoch()["unmatched_queries"] == pytest.approx(0.9)  # a fresh count each epoch


def test_no_object_probability_is_read_on_the_matched_queries():
    logits = torch.full((2, 3, 3), -20.0)  # 2 images, 3 queries, 2 classes + no-object
    logits[..., -1] = 20.0  # every query says "no object"...
    logits[0, 1] = torch.tensor([20.0, -20.0, -20.0])  # ...except the two matched ones, which are confident
    logits[1, 2] = torch.tensor([-20.0, 20.0, -20.0])
    matches = [pairs([1], [0]), pairs([2], [0])]
    total = no_object_probability_sum(logits, matches)
    assert float(total) == pytest.approx(0.0, abs=1e-6)
    tracker = MatchTracker(num_queries=3)
    tracker.add([1, 2], matches, no_object_probability_sum(logits, [pairs([0], [0]), pairs([0], [0])]))
    assert tracker.end_epoch()["no_object_prob"] == pytest.approx(1.0)
